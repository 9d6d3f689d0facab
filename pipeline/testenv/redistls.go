package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RedisTLS is the TLS-only Redis of `scripts/redis-local.sh start tls`,
// with freshet's two least-privilege users (docs/operations.md), as its
// FRESHET_TEST_REDIS_TLS_URL and the variables beside it name it.
type RedisTLS struct {
	// URL and ReadOnlyURL are rediss://user@host:port/0 of featurize's and
	// serve's users, without their passwords.
	URL, ReadOnlyURL string
	// PasswordFile and ReadOnlyPasswordFile hold those users' passwords.
	PasswordFile, ReadOnlyPasswordFile string
	// CA is the PEM file of the CA that signed the server's certificate
	// (for 127.0.0.1 and localhost) and the client's.
	CA string
	// ClientCert and ClientKey are a client certificate the server
	// accepts (it asks for none, but checks one that is given).
	ClientCert, ClientKey string
	// ClusterURL and ClusterReadOnlyURL are rediss+cluster://user@host:port
	// of the TLS-only cluster beside the server, with the same users,
	// passwords and CA; empty when the variables are unset.
	ClusterURL, ClusterReadOnlyURL string
}

// RedisTLSEnv returns the TLS Redis named by FRESHET_TEST_REDIS_TLS_URL and
// the variables beside it; the test is skipped when they are unset.
func RedisTLSEnv(tb testing.TB) RedisTLS {
	tb.Helper()
	e := RedisTLS{
		URL:                  os.Getenv("FRESHET_TEST_REDIS_TLS_URL"),
		ReadOnlyURL:          os.Getenv("FRESHET_TEST_REDIS_TLS_READONLY_URL"),
		PasswordFile:         os.Getenv("FRESHET_TEST_REDIS_TLS_PASSWORD_FILE"),
		ReadOnlyPasswordFile: os.Getenv("FRESHET_TEST_REDIS_TLS_READONLY_PASSWORD_FILE"),
		CA:                   os.Getenv("FRESHET_TEST_REDIS_TLS_CA"),
		ClientCert:           os.Getenv("FRESHET_TEST_REDIS_TLS_CLIENT_CERT"),
		ClientKey:            os.Getenv("FRESHET_TEST_REDIS_TLS_CLIENT_KEY"),
		ClusterURL:           os.Getenv("FRESHET_TEST_REDIS_TLS_CLUSTER_URL"),
		ClusterReadOnlyURL:   os.Getenv("FRESHET_TEST_REDIS_TLS_CLUSTER_READONLY_URL"),
	}
	if e.URL == "" {
		tb.Skip("FRESHET_TEST_REDIS_TLS_URL is unset: eval \"$(scripts/redis-local.sh start tls)\"")
	}
	for name, v := range map[string]string{
		"FRESHET_TEST_REDIS_TLS_READONLY_URL": e.ReadOnlyURL, "FRESHET_TEST_REDIS_TLS_PASSWORD_FILE": e.PasswordFile,
		"FRESHET_TEST_REDIS_TLS_READONLY_PASSWORD_FILE": e.ReadOnlyPasswordFile, "FRESHET_TEST_REDIS_TLS_CA": e.CA,
		"FRESHET_TEST_REDIS_TLS_CLIENT_CERT": e.ClientCert, "FRESHET_TEST_REDIS_TLS_CLIENT_KEY": e.ClientKey,
	} {
		if v == "" {
			tb.Fatalf("FRESHET_TEST_REDIS_TLS_URL is set but %s is not: use the exports of scripts/redis-local.sh start tls", name)
		}
	}
	return e
}

// Addr is the host:port of the TLS Redis.
func (e RedisTLS) Addr(tb testing.TB) string {
	tb.Helper()
	u, err := url.Parse(e.URL)
	if err != nil {
		tb.Fatalf("FRESHET_TEST_REDIS_TLS_URL: %v", err)
	}
	return u.Host
}

// Password reads a password file of the TLS Redis.
func (e RedisTLS) Password(tb testing.TB, file string) string {
	tb.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSuffix(string(b), "\n")
}

// WithPassword is a rediss://user@host URL with the password put in.
func WithPassword(tb testing.TB, rawURL, password string) string {
	tb.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		tb.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String()
}

// UntrustedCA writes to a file of the test the PEM certificate of a CA made
// for it, which signed nothing, and returns its path.
func UntrustedCA(tb testing.TB) string {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "untrusted test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "untrusted-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}
