package main_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/auth/authtest"
	"github.com/freshet-ml/freshet/pipeline/httpx/tlstest"
)

// TestTLSSettingsErrors: a bad TLS setting stops a service at start, with
// status 2 and the setting named.
func TestTLSSettingsErrors(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	cert, key := ca.Server(t, "serve").Write(t, dir, "serve")
	garbage := tlstest.Write(t, dir, "garbage.pem", []byte("hello"))
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"FRESHET_TLS_CERT=" + cert}, "tls-key: \"\" is empty while tls-cert is set"},
		{[]string{"FRESHET_TLS_KEY=" + key}, "tls-cert: \"\" is empty while tls-key is set"},
		{[]string{"FRESHET_TLS_CERT=" + filepath.Join(dir, "nope"), "FRESHET_TLS_KEY=" + key}, "cannot be read: no such file"},
		{[]string{"FRESHET_TLS_CERT=" + cert, "FRESHET_TLS_KEY=" + garbage}, "tls-key: \"" + garbage + "\" does not load with tls-cert"},
		{[]string{"FRESHET_TLS_CERT=" + cert, "FRESHET_TLS_KEY=" + key, "FRESHET_TLS_CLIENT_CA=" + garbage},
			"tls-client-ca: \"" + garbage + "\" holds no PEM certificate; expected a PEM file of CA certificates (-----BEGIN CERTIFICATE-----) (set by FRESHET_TLS_CLIENT_CA)"},
	} {
		for _, prog := range []string{"serve", "ingest", "featurize"} {
			r := run(t, prog, tc.env...)
			require.Equal(t, 2, r.code, "%s %v: %s", prog, tc.env, r.stderr)
			require.Contains(t, r.stderr, tc.want, "%s %v", prog, tc.env)
			require.NotContains(t, r.stderr, "PRIVATE KEY")
		}
	}
}

// TestServeOverTLS runs serve with a certificate and tokens: it answers
// over HTTPS with HTTP/2, a lookup without a token gets 401 there, and
// freshet healthcheck works with --ca, fails clearly without, and works
// from the service's own environment with an http:// URL.
func TestServeOverTLS(t *testing.T) {
	redisURL := os.Getenv("FRESHET_TEST_REDIS_URL")
	if redisURL == "" {
		t.Skip("FRESHET_TEST_REDIS_URL is not set")
	}
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	cert, key := ca.Server(t, "serve").Write(t, dir, "serve")
	caFile := tlstest.Write(t, dir, "ca.pem", ca.PEM)
	tokens := authtest.New(t, nil, []string{"app:serve"})

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	cmd := exec.Command(filepath.Join(bin, "serve"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "FRESHET_HTTP_ADDR="+addr, "FRESHET_REDIS_URL="+redisURL,
		"FRESHET_TLS_CERT="+cert, "FRESHET_TLS_KEY="+key, "FRESHET_TOKENS="+tokens.Path, "OTEL_SDK_DISABLED=true")
	logFile, err := os.Create(filepath.Join(dir, "serve.log"))
	require.NoError(t, err)
	defer logFile.Close()
	cmd.Stderr = logFile
	logs := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	url := "https://" + addr
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}}
	defer c.CloseIdleConnections()
	var last string // why the last probe failed
	ready := func() bool {
		res, err := c.Get(url + "/readyz")
		if err != nil {
			last = err.Error()
			return false
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		last = res.Status + " " + string(body)
		return res.StatusCode == http.StatusOK
	}
	if !assert.Eventually(t, ready, 20*time.Second, 100*time.Millisecond) {
		t.Fatalf("serve did not get ready (last probe: %s); its log:\n%s", last, logs())
	}

	res, err := c.Get(url + "/v1/features/user_spend/u1")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 2, res.ProtoMajor)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode, "tokens still apply over TLS")
	require.Equal(t, "Bearer", res.Header.Get("WWW-Authenticate"))

	req, err := http.NewRequest("GET", url+"/v1/features/user_spend/u1", nil)
	require.NoError(t, err)
	tokens.Authorize(req, "app")
	res, err = c.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.NotEqual(t, http.StatusUnauthorized, res.StatusCode)

	r := run(t, "freshet healthcheck --ca "+caFile+" "+url+"/readyz")
	require.Equal(t, 0, r.code, r.stderr)
	r = run(t, "freshet healthcheck "+url+"/readyz")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "certificate signed by unknown authority")
	require.Contains(t, r.stderr, "trust the server's CA with --ca FILE")
	r = run(t, "freshet healthcheck --insecure "+url+"/readyz")
	require.Equal(t, 0, r.code, r.stderr)
	// In the service's container: its own variables, the compose URL.
	r = run(t, "freshet healthcheck http://"+strings.Replace(addr, "127.0.0.1", "localhost", 1)+"/readyz",
		"FRESHET_TLS_CERT="+cert, "FRESHET_TLS_KEY="+key)
	require.Equal(t, 0, r.code, r.stderr)
	// Another server's certificate in the environment is not trusted.
	other, otherKey := tlstest.NewCA(t, "other").Server(t, "other").Write(t, dir, "other")
	r = run(t, "freshet healthcheck http://"+addr+"/readyz", "FRESHET_TLS_CERT="+other, "FRESHET_TLS_KEY="+otherKey)
	require.Equal(t, 1, r.code)

	require.Contains(t, logs(), "HTTPS on")
	require.Contains(t, logs(), cert)
	require.NotContains(t, logs(), "PRIVATE KEY")
}

// TestHealthcheckMutualTLS: the healthcheck presents --cert and --key.
func TestHealthcheckMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	clients := tlstest.NewCA(t, "clients")
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	sp := ca.Server(t, "s")
	kp, err := tls.X509KeyPair(sp.Cert, sp.Key)
	require.NoError(t, err)
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{kp}, ClientCAs: clients.Pool(), ClientAuth: tls.RequireAndVerifyClientCert}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	caFile := tlstest.Write(t, dir, "ca.pem", ca.PEM)
	url := "https://" + l.Addr().String() + "/"

	r := run(t, "freshet healthcheck --ca "+caFile+" "+url)
	require.Equal(t, 1, r.code, "no client certificate")
	cert, key := clients.Client(t, "probe").Write(t, dir, "probe")
	r = run(t, "freshet healthcheck --ca "+caFile+" --cert "+cert+" --key "+key+" "+url)
	require.Equal(t, 0, r.code, r.stderr)
	r = run(t, "freshet healthcheck --cert "+cert+" "+url)
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "--cert and --key go together")
}
