package broker

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/retry"
)

// selfSigned writes a self-signed CA certificate and its key as PEM files in
// dir and returns their paths.
func selfSigned(tb testing.TB, dir, name string) (certFile, keyFile string) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(tb, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(tb, err)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	require.NoError(tb, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(tb, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile
}

func TestSecurityValidate(t *testing.T) {
	dir := t.TempDir()
	ca, key := selfSigned(t, dir, "ca")
	_, otherKey := selfSigned(t, dir, "other")
	notPEM := filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))
	pwFile := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte("s3cret\n"), 0o600))
	emptyFile := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(emptyFile, nil, 0o600))
	missing := filepath.Join(dir, "missing.pem")
	scram := Security{SASL: "scram-sha-512", Username: "u", PasswordFile: pwFile}
	for _, tc := range []struct {
		name string
		s    Security
		err  string
	}{
		{"plaintext", Security{}, ""},
		{"tls, system roots", Security{TLS: true}, ""},
		{"tls, CA", Security{TLS: true, CA: ca}, ""},
		{"mtls", Security{TLS: true, CA: ca, Cert: ca, Key: key}, ""},
		{"scram", scram, ""},
		{"upper case", Security{SASL: "SCRAM-SHA-256", Username: "u", Password: "p"}, ""},
		{"plain", Security{SASL: "plain", Username: "u", Password: "p"}, ""},
		{"misspelt mechanism", Security{SASL: "scram-sha512", Username: "u", Password: "p"},
			`kafka-sasl: "scram-sha512" is not a SASL mechanism; did you mean scram-sha-512?; expected plain, scram-sha-256 or scram-sha-512`},
		{"unknown mechanism", Security{SASL: "kerberos", Username: "u", Password: "p"},
			`kafka-sasl: "kerberos" is not a SASL mechanism; expected plain, scram-sha-256 or scram-sha-512`},
		{"no username", Security{SASL: "plain", Password: "p"},
			`kafka-username: "" is empty but kafka-sasl is plain; expected the SASL user name`},
		{"no password", Security{SASL: "plain", Username: "u"},
			`kafka-password: "" is empty, and so is kafka-password-file, but kafka-sasl is plain; expected the SASL password, best as a file: kafka-password-file`},
		{"both passwords", Security{SASL: "plain", Username: "u", Password: "p4ss", PasswordFile: pwFile},
			`kafka-password: "xxxxx" is set together with kafka-password-file; expected one of them, not both`},
		{"password file missing", Security{SASL: "plain", Username: "u", PasswordFile: missing},
			`kafka-password-file: "` + missing + `" cannot be read: no such file; expected a file holding the SASL password`},
		{"password file empty", Security{SASL: "plain", Username: "u", PasswordFile: emptyFile}, `kafka-password-file: "` + emptyFile + `" has an empty first line`},
		{"username without sasl", Security{Username: "u"}, `kafka-username: "u" is set but kafka-sasl is not; expected it with kafka-sasl, or neither`},
		{"password without sasl", Security{Password: "p4ss"}, `kafka-password: "xxxxx" is set but kafka-sasl is not`},
		{"ca without tls", Security{CA: ca}, `kafka-ca: "` + ca + `" is set but kafka-tls is not`},
		{"ca missing", Security{TLS: true, CA: missing},
			`kafka-ca: "` + missing + `" cannot be read: no such file; expected a PEM file of CA certificates (-----BEGIN CERTIFICATE-----)`},
		{"ca not pem", Security{TLS: true, CA: notPEM}, `kafka-ca: "` + notPEM + `" holds no PEM certificate; expected a PEM file of CA certificates`},
		{"cert without key", Security{TLS: true, Cert: ca},
			`kafka-cert: "` + ca + `" is set without kafka-key; expected both: the client certificate and its private key, PEM files`},
		{"key without cert", Security{TLS: true, Key: key}, `kafka-key: "` + key + `" is set without kafka-cert`},
		{"key of another cert", Security{TLS: true, Cert: ca, Key: otherKey}, `kafka-cert: "` + ca + `" does not load with kafka-key "` + otherKey + `": tls: private key does not match public key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), tc.err), "got %s", err)
			var se *config.SettingError
			require.ErrorAs(t, err, &se)
			require.NotContains(t, err.Error(), "p4ss")
			// Config.Validate checks them too.
			c := defaults(t)
			c.Security = tc.s
			require.Equal(t, err.Error(), c.Validate().Error())
		})
	}
}

// TestFlags: every setting of the contract is a flag of RegisterFlags (so
// a FRESHET_KAFKA_* variable), and the password never prints: not in the
// effective settings, the usage, fmt's or slog's output.
func TestFlags(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs)
	dir := t.TempDir()
	ca, _ := selfSigned(t, dir, "ca")
	env := map[string]string{
		"FRESHET_KAFKA_TLS": "true", "FRESHET_KAFKA_CA": ca, "FRESHET_KAFKA_SASL": "scram-sha-512",
		"FRESHET_KAFKA_USERNAME": "alice", "FRESHET_KAFKA_PASSWORD": "hunter2-pw",
	}
	require.NoError(t, config.ParseLookup(fs, nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	require.Equal(t, Security{TLS: true, CA: ca, SASL: "scram-sha-512", Username: "alice", Password: "hunter2-pw"}, c.Security)
	require.NoError(t, c.Validate())
	for _, name := range []string{"kafka-tls", "kafka-ca", "kafka-cert", "kafka-key", "kafka-sasl", "kafka-username", "kafka-password", "kafka-password-file"} {
		require.NotNil(t, fs.Lookup(name), name)
	}

	var out bytes.Buffer
	fmt.Fprint(&out, config.Effective(fs)...)
	fmt.Fprintf(&out, "%v %+v %#v %s", c, c, c, c.Security.Password)
	slog.New(slog.NewTextHandler(&out, nil)).Info("x", "cfg", c, "pw", c.Security.Password)
	fs.SetOutput(&out)
	fs.PrintDefaults()
	require.NoError(t, config.WriteMarkdown(&out, fs))
	require.NotContains(t, out.String(), "hunter2")
	require.Contains(t, out.String(), "kafka-passwordxxxxx", "the effective settings say a password is set")
	require.Equal(t, []string{"FRESHET_KAFKA_TLS=true", "FRESHET_KAFKA_CA=" + ca, "FRESHET_KAFKA_SASL=scram-sha-512",
		"FRESHET_KAFKA_USERNAME=alice", "FRESHET_KAFKA_PASSWORD=hunter2-pw"}, c.Security.Env())
}

func TestDialerAndTransport(t *testing.T) {
	dir := t.TempDir()
	ca, key := selfSigned(t, dir, "ca")
	pw := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pw, []byte("from-file\r\n"), 0o600))

	plain := Config{Brokers: []string{"b:9092"}}
	d := plain.Dialer()
	require.Nil(t, d.TLS)
	require.Nil(t, d.SASLMechanism)
	require.Equal(t, dialTimeout, d.Timeout)
	require.Same(t, plain.Transport(), (&Config{}).Transport(), "equal settings share one transport (and its connections)")

	sec := Config{Security: Security{TLS: true, CA: ca, Cert: ca, Key: key, SASL: "scram-sha-256", Username: "bob", PasswordFile: pw}}
	require.NoError(t, sec.Security.Validate())
	d = sec.Dialer()
	require.NotNil(t, d.TLS)
	require.NotNil(t, d.TLS.RootCAs)
	require.Len(t, d.TLS.Certificates, 1)
	require.GreaterOrEqual(t, d.TLS.MinVersion, uint16(tls.VersionTLS12))
	require.Equal(t, "SCRAM-SHA-256", d.SASLMechanism.Name())
	tr := sec.Transport().(*explaining).rt.(*kafka.Transport)
	require.Same(t, d.TLS, tr.TLS)
	require.Equal(t, "SCRAM-SHA-256", tr.SASL.Name())
	require.Same(t, sec.NewWriter().Transport, sec.Transport(), "the writer goes through the transport")
	require.Same(t, sec.Client().Transport, sec.Transport(), "so does the topic admin")

	require.Equal(t, "PLAIN", Security{SASL: "PLAIN", Username: "u", Password: "p"}.Dialer().SASLMechanism.Name())
	require.Equal(t, "SCRAM-SHA-512", Security{SASL: "scram-sha-512", Username: "u", Password: "p"}.Dialer().SASLMechanism.Name())

	// Settings that do not load fail every connection with the reason.
	broken := Security{TLS: true, CA: filepath.Join(dir, "gone.pem")}
	_, err := broken.Dialer().DialContext(context.Background(), "tcp", "127.0.0.1:1")
	require.ErrorContains(t, err, `kafka settings: kafka-ca: "`+broken.CA+`" cannot be read`)
	_, err = (&kafka.Client{Addr: kafka.TCP("127.0.0.1:1"), Transport: broken.Transport()}).Metadata(context.Background(), &kafka.MetadataRequest{})
	require.ErrorContains(t, err, "kafka settings: kafka-ca")
}

func TestExplain(t *testing.T) {
	s := Security{TLS: true, CA: "/ca.pem", SASL: "scram-sha-512", Username: "alice", Password: "hunter2"}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("x: %w", kafka.SASLAuthenticationFailed), `SASL authentication failed: the broker refused user "alice" with SCRAM-SHA-512 (check kafka-username and the password)`},
		{kafka.UnsupportedSASLMechanism, "SASL authentication failed: the broker does not offer SCRAM-SHA-512 on this listener"},
		{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, `TLS handshake: certificate signed by unknown authority: the broker's certificate does not chain to kafka-ca "/ca.pem"`},
		{x509.HostnameError{Certificate: &x509.Certificate{}, Host: "kafka9"}, "TLS handshake: certificate is not valid for any names, but wanted to match kafka9"},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, "TLS handshake: the broker does not answer in TLS"},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}, "TLS handshake: the broker refused it: tls: certificate required (does the listener require a client certificate? set kafka-cert and kafka-key)"},
	} {
		err := s.Explain(tc.err)
		require.ErrorContains(t, err, tc.want)
		require.ErrorIs(t, err, ErrSecurity)
		require.ErrorIs(t, err, tc.err)
		require.NotContains(t, err.Error(), "hunter2")
	}
	for _, transient := range []error{nil, context.DeadlineExceeded, &net.OpError{Op: "dial", Err: errors.New("connection refused")}, kafka.BrokerNotAvailable} {
		require.Equal(t, transient, s.Explain(transient))
		require.NotErrorIs(t, s.Explain(transient), ErrSecurity)
	}
}

// TestAwaitTopicsRetriesTransient: an unreachable broker is retried, each
// retry told with its cause, until the context ends.
func TestAwaitTopicsRetriesTransient(t *testing.T) {
	c := defaults(t)
	c.Brokers = []string{"127.0.0.1:1"}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var causes []error
	err := c.AwaitTopics(ctx, []string{"x"}, 500*time.Millisecond, &retry.Backoff{}, func(err error, _ time.Duration) { causes = append(causes, err) })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotEmpty(t, causes)
	require.ErrorContains(t, causes[0], "kafka metadata from [127.0.0.1:1]")
}
