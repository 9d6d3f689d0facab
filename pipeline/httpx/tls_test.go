package httpx_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/httpx/tlstest"
)

// tlsServer serves a handler that answers the protocol over TLS with cfg,
// until the test ends; it returns the URL and the running certificates.
func tlsServer(t *testing.T, cfg *httpx.TLSConfig, log *slog.Logger) (string, *httpx.Certificates) {
	t.Helper()
	require.NoError(t, cfg.Validate())
	certs, err := cfg.Open(log)
	require.NoError(t, err)
	l, err := httpx.Listen("127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- certs.Run(ctx) }()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
		if len(r.TLS.PeerCertificates) > 0 {
			io.WriteString(w, " "+r.TLS.PeerCertificates[0].Subject.CommonName)
		}
	})
	go func() { done <- httpx.Serve(ctx, httpx.WithTLS(l, certs.Config()), h, time.Second) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, <-done)
	})
	return "https://" + l.Addr().String(), certs
}

// client trusts ca and presents pairs.
func client(ca *tlstest.CA, maxVersion uint16, pairs ...tlstest.Pair) *http.Client {
	cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS10, MaxVersion: maxVersion}
	for _, p := range pairs {
		c, err := tls.X509KeyPair(p.Cert, p.Key)
		if err != nil {
			panic(err)
		}
		cfg.Certificates = append(cfg.Certificates, c)
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	res, err := c.Get(url)
	require.NoError(t, err)
	defer c.CloseIdleConnections() // the server's Shutdown waits for HTTP/2 connections to go
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, string(b)
}

func TestServeTLSHTTP2AndMinVersion(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	cert, key := ca.Server(t, "server one").Write(t, dir, "server")
	url, _ := tlsServer(t, &httpx.TLSConfig{Cert: cert, Key: key}, nil)

	c := client(ca, 0)
	defer c.CloseIdleConnections()
	res, body := get(t, c, url)
	require.Equal(t, 2, res.ProtoMajor, "HTTP/2 over TLS")
	require.Equal(t, "HTTP/2.0", body)
	require.Equal(t, uint16(tls.VersionTLS13), res.TLS.Version)

	res, _ = get(t, client(ca, tls.VersionTLS12), url)
	require.Equal(t, uint16(tls.VersionTLS12), res.TLS.Version, "TLS 1.2 is accepted")

	_, err := client(ca, tls.VersionTLS11).Get(url)
	require.Error(t, err, "a TLS 1.1 client is refused")
	require.Contains(t, err.Error(), "protocol version")

	_, err = http.Get(strings.Replace(url, "https", "http", 1))
	if err == nil {
		res, _ := get(t, http.DefaultClient, strings.Replace(url, "https", "http", 1))
		require.Equal(t, http.StatusBadRequest, res.StatusCode, "plain HTTP is not served")
	}
}

// syncBuffer is a log sink the test reads while the server writes.
type syncBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }
func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.String()
}

func TestCertificateRotation(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	cert, key := ca.Server(t, "first").Write(t, dir, "server")
	logs := newSyncBuffer()
	url, _ := tlsServer(t, &httpx.TLSConfig{Cert: cert, Key: key}, slog.New(slog.NewTextHandler(logs, nil)))
	served := func() string {
		c := client(ca, 0)
		res, _ := get(t, c, url)
		c.CloseIdleConnections()
		return res.TLS.PeerCertificates[0].Subject.CommonName
	}
	require.Equal(t, "first", served())

	// A rewrite of both files is served within the poll, without restart.
	ca.Server(t, "second").Write(t, dir, "server")
	require.Eventually(t, func() bool { return served() == "second" }, 5*time.Second, 50*time.Millisecond)
	require.Contains(t, logs.String(), "TLS certificate reloaded")

	// A key that is not the certificate's leaves the previous pair.
	require.NoError(t, os.WriteFile(key, ca.Server(t, "other").Key, 0o600))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "the pair in force stays") }, 5*time.Second, 50*time.Millisecond)
	require.Equal(t, "second", served())
	require.NotContains(t, logs.String(), "PRIVATE KEY", "the key's content is never logged")

	// Garbage in the certificate too.
	require.NoError(t, os.WriteFile(cert, []byte("not a certificate"), 0o600))
	time.Sleep(1500 * time.Millisecond)
	require.Equal(t, "second", served())

	// A good pair again is taken.
	ca.Server(t, "third").Write(t, dir, "server")
	require.Eventually(t, func() bool { return served() == "third" }, 5*time.Second, 50*time.Millisecond)
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "server CA")
	clientCA := tlstest.NewCA(t, "client CA")
	cert, key := ca.Server(t, "server").Write(t, dir, "server")
	caFile := tlstest.Write(t, dir, "clients.pem", clientCA.PEM)
	url, _ := tlsServer(t, &httpx.TLSConfig{Cert: cert, Key: key, ClientCA: caFile}, nil)

	_, err := client(ca, 0).Get(url)
	require.Error(t, err, "a client without a certificate is refused")

	_, err = client(ca, 0, tlstest.NewCA(t, "stranger").Client(t, "mallory")).Get(url)
	require.Error(t, err, "a client certificate of another CA is refused")

	c := client(ca, 0, clientCA.Client(t, "prometheus"))
	res, body := get(t, c, url)
	c.CloseIdleConnections()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "HTTP/2.0 prometheus", body, "the server saw the client's certificate")
}

func TestTLSConfigValidate(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	cert, key := ca.Server(t, "server").Write(t, dir, "server")
	_, otherKey := ca.Server(t, "other").Write(t, dir, "other")
	garbage := tlstest.Write(t, dir, "garbage.pem", []byte("hello"))
	missing := filepath.Join(dir, "missing.pem")
	caFile := tlstest.Write(t, dir, "ca.pem", ca.PEM)
	for _, tc := range []struct {
		name string
		cfg  httpx.TLSConfig
		// settings are those the errors name, in order; none: valid.
		settings []string
		contains string
	}{
		{"off", httpx.TLSConfig{}, nil, ""},
		{"pair", httpx.TLSConfig{Cert: cert, Key: key}, nil, ""},
		{"mutual", httpx.TLSConfig{Cert: cert, Key: key, ClientCA: caFile}, nil, ""},
		{"cert without key", httpx.TLSConfig{Cert: cert}, []string{"tls-key"}, "is empty while tls-cert is set"},
		{"key without cert", httpx.TLSConfig{Key: key}, []string{"tls-cert"}, "is empty while tls-key is set"},
		{"missing cert", httpx.TLSConfig{Cert: missing, Key: key}, []string{"tls-cert"}, "cannot be read: no such file"},
		{"missing key", httpx.TLSConfig{Cert: cert, Key: missing}, []string{"tls-key"}, "cannot be read: no such file"},
		{"cert not PEM", httpx.TLSConfig{Cert: garbage, Key: key}, []string{"tls-cert"}, "does not load"},
		{"key of another", httpx.TLSConfig{Cert: cert, Key: otherKey}, []string{"tls-key"}, "does not load with tls-cert"},
		{"client CA not PEM", httpx.TLSConfig{Cert: cert, Key: key, ClientCA: garbage}, []string{"tls-client-ca"}, "holds no PEM certificate"},
		{"client CA missing", httpx.TLSConfig{Cert: cert, Key: key, ClientCA: missing}, []string{"tls-client-ca"}, "no such file"},
		{"client CA alone", httpx.TLSConfig{ClientCA: caFile}, []string{"tls-client-ca"}, "without tls-cert and tls-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.settings == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.contains)
			var names []string
			for _, e := range unjoin(err) {
				var se *config.SettingError
				require.True(t, errors.As(e, &se), "%v is not a SettingError", e)
				names = append(names, se.Setting)
			}
			require.Equal(t, tc.settings, names)
			require.NotContains(t, err.Error(), "PRIVATE KEY")
		})
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestPlainListenerServesHTTP(t *testing.T) {
	l, err := httpx.Listen("127.0.0.1:0")
	require.NoError(t, err)
	require.Same(t, l, httpx.WithTLS(l, nil))
	var off httpx.TLSConfig
	certs, err := off.Open(nil)
	require.NoError(t, err)
	require.Nil(t, certs)
	require.NoError(t, certs.Run(context.Background()), "a nil *Certificates runs as nothing")
	l.Close()
}
