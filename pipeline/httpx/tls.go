package httpx

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/freshet-ml/freshet/pipeline/config"
)

// TLSConfig is the TLS setting of a service's HTTP server: a certificate
// and its key, and optionally the CA whose client certificates it
// requires (mutual TLS). Without a certificate the server speaks plain
// HTTP.
type TLSConfig struct {
	// Cert is the PEM file of the server's certificate (its chain may
	// follow); Key the PEM file of its private key. Both or neither.
	// The paths are logged; the key's content never is.
	Cert, Key string
	// ClientCA, when set, is a PEM file of the CAs whose client
	// certificates the server requires: a client without one, or with
	// one they did not sign, fails the handshake.
	ClientCA string

	// pair and clientCAs are what Validate loaded, which Open puts in
	// force, so that what was checked is what runs.
	pair      *certFiles
	clientCAs *x509.CertPool
}

// RegisterFlags registers --tls-cert, --tls-key and --tls-client-ca
// (FRESHET_TLS_CERT, FRESHET_TLS_KEY, FRESHET_TLS_CLIENT_CA).
func (c *TLSConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Cert, "tls-cert", "", "PEM file of the HTTP server's certificate (and its chain), with --tls-key: "+
		"the server then speaks HTTPS only (TLS 1.2 or later, HTTP/2); the pair is re-read when either file changes and on SIGHUP; "+
		"empty: plain HTTP")
	fs.StringVar(&c.Key, "tls-key", "", "PEM file of the private key of --tls-cert")
	fs.StringVar(&c.ClientCA, "tls-client-ca", "", "PEM file of the CAs whose client certificates the HTTP server requires "+
		"(mutual TLS; needs --tls-cert); empty: no client certificate asked")
}

// Enabled is whether the server speaks TLS.
func (c *TLSConfig) Enabled() bool { return c.Cert != "" || c.Key != "" }

// Validate loads the pair and the client CAs: a certificate without a
// key (or a key without one), a file that cannot be read, a pair that does
// not load and a client CA file that holds no PEM certificate are each a
// *config.SettingError naming the setting.
func (c *TLSConfig) Validate() error {
	c.pair, c.clientCAs = nil, nil
	var errs []error
	switch {
	case c.Cert != "" && c.Key == "":
		errs = append(errs, &config.SettingError{Setting: "tls-key", Value: c.Key, Problem: "is empty while tls-cert is set",
			Expected: "the PEM file of the private key of " + c.Cert})
	case c.Key != "" && c.Cert == "":
		errs = append(errs, &config.SettingError{Setting: "tls-cert", Value: c.Cert, Problem: "is empty while tls-key is set",
			Expected: "the PEM file of the certificate of " + c.Key})
	case c.Cert != "":
		p, err := loadPair(c.Cert, c.Key)
		if err != nil {
			errs = append(errs, err)
		}
		c.pair = p
	}
	if c.ClientCA != "" {
		if !c.Enabled() {
			errs = append(errs, &config.SettingError{Setting: "tls-client-ca", Value: c.ClientCA, Problem: "is set without tls-cert and tls-key",
				Expected: "a server certificate and key too: client certificates are asked for in a TLS handshake"})
		}
		pool, err := config.CAPool("tls-client-ca", c.ClientCA)
		if err != nil {
			errs = append(errs, err)
		}
		c.clientCAs = pool
	}
	return errors.Join(errs...)
}

// certFiles is a certificate pair as loaded from its files, with what
// tells a change of them.
type certFiles struct {
	cert      *tls.Certificate
	certPEM   []byte
	keyPEM    []byte
	certStamp stamp
	keyStamp  stamp
}

// stamp is what a stat says of a file: a rewrite changes it.
type stamp struct {
	mod  time.Time
	size int64
}

func stat(path string) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}
	}
	return stamp{fi.ModTime(), fi.Size()}
}

// loadPair reads and parses a pair; its errors are *config.SettingError
// naming the file at fault.
func loadPair(certPath, keyPath string) (*certFiles, error) {
	cs, ks := stat(certPath), stat(keyPath)
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, &config.SettingError{Setting: "tls-cert", Value: certPath, Problem: "cannot be read: " + config.FileProblem(err),
			Expected: "a PEM file of a certificate"}
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, &config.SettingError{Setting: "tls-key", Value: keyPath, Problem: "cannot be read: " + config.FileProblem(err),
			Expected: "a PEM file of a private key"}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, pairError(certPath, keyPath, certPEM, err)
	}
	return &certFiles{cert: &cert, certPEM: certPEM, keyPEM: keyPEM, certStamp: cs, keyStamp: ks}, nil
}

// pairError names the file of a pair that does not load: the certificate
// when it holds no certificate, else the key (missing, or not the
// certificate's).
func pairError(certPath, keyPath string, certPEM []byte, err error) error {
	if _, cerr := tls.X509KeyPair(certPEM, nil); cerr != nil && !bytes.Contains(certPEM, []byte("CERTIFICATE-----")) {
		return &config.SettingError{Setting: "tls-cert", Value: certPath, Problem: "does not load: " + err.Error(),
			Expected: "a PEM file of a certificate (-----BEGIN CERTIFICATE-----)"}
	}
	return &config.SettingError{Setting: "tls-key", Value: keyPath, Problem: "does not load with tls-cert " + certPath + ": " + err.Error(),
		Expected: "the PEM file of the private key of that certificate"}
}

// Open returns the server's certificates, to Run for reloads, or nil
// without TLS; it logs which: the files, or nothing (plain HTTP is the
// default, the tokens setting warns of an open API). It loads the pair
// unless Validate did.
func (c *TLSConfig) Open(log *slog.Logger) (*Certificates, error) {
	if !c.Enabled() {
		return nil, nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c.pair == nil || (c.ClientCA != "" && c.clientCAs == nil) {
		if err := c.Validate(); err != nil {
			return nil, err
		}
	}
	k := &Certificates{certPath: c.Cert, keyPath: c.Key, clientCAs: c.clientCAs, log: log, poll: time.Second}
	k.files = c.pair
	k.current.Store(c.pair.cert)
	attrs := []any{"tls_cert", c.Cert, "tls_key", c.Key, "min_version", "1.2", "subject", leafSubject(c.pair.cert)}
	if c.ClientCA != "" {
		attrs = append(attrs, "tls_client_ca", c.ClientCA, "client_auth", "required")
	}
	log.Info("HTTPS on (HTTP/2, TLS 1.2 or later)", attrs...)
	return k, nil
}

// leafSubject is the subject of a pair's certificate, for the log.
func leafSubject(c *tls.Certificate) string {
	if c.Leaf != nil {
		return c.Leaf.Subject.String()
	}
	if len(c.Certificate) > 0 {
		if l, err := x509.ParseCertificate(c.Certificate[0]); err == nil {
			return l.Subject.String()
		}
	}
	return ""
}

// Certificates is a server's certificate pair in force, reloaded by Run
// when its files change; its Config is the server's tls.Config.
type Certificates struct {
	certPath, keyPath string
	clientCAs         *x509.CertPool
	log               *slog.Logger
	poll              time.Duration

	mu      sync.Mutex // serializes Reload
	files   *certFiles
	current atomic.Pointer[tls.Certificate]
}

// Config is the tls.Config of the server: TLS 1.2 at least, the pair in
// force at each handshake, and client certificates required when a client
// CA is set. HTTP/2 is negotiated when the server serves it with ServeTLS
// (Serve does).
func (k *Certificates) Config() *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return k.current.Load(), nil
		},
		NextProtos: []string{"h2", "http/1.1"},
	}
	if k.clientCAs != nil {
		cfg.ClientCAs, cfg.ClientAuth = k.clientCAs, tls.RequireAndVerifyClientCert
	}
	return cfg
}

// Reload reads the pair again if either file's modification time or size
// changed since it was last read, and puts it in force if its content
// changed and it loads. It says whether the pair in force changed; on an
// error the previous pair stays, and the same files are not read again
// until they change once more.
func (k *Certificates) Reload() (bool, error) {
	return k.reload(false)
}

func (k *Certificates) reload(force bool) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	cs, ks := stat(k.certPath), stat(k.keyPath)
	if !force && cs == k.files.certStamp && ks == k.files.keyStamp {
		return false, nil
	}
	p, err := loadPair(k.certPath, k.keyPath)
	if err != nil {
		k.files.certStamp, k.files.keyStamp = cs, ks // report a bad rewrite once
		return false, err
	}
	if bytes.Equal(p.certPEM, k.files.certPEM) && bytes.Equal(p.keyPEM, k.files.keyPEM) {
		k.files.certStamp, k.files.keyStamp = p.certStamp, p.keyStamp
		return false, nil
	}
	k.files = p
	k.current.Store(p.cert)
	return true, nil
}

// Run reloads the pair when its files change (checked every second, by
// their modification time and size) and on SIGHUP, until ctx ends; it
// logs each reload and each pair that does not load, which leaves the
// previous one in force. It returns nil when ctx ends; on a nil
// *Certificates it returns at once.
func (k *Certificates) Run(ctx context.Context) error {
	if k == nil {
		return nil
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(k.poll)
	defer t.Stop()
	for {
		force := false
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-hup:
			k.log.Info("SIGHUP: reading the TLS certificate and key", "tls_cert", k.certPath, "tls_key", k.keyPath)
			force = true
		}
		changed, err := k.reload(force)
		switch {
		case err != nil:
			k.log.Error("TLS certificate and key do not load; the pair in force stays", "tls_cert", k.certPath, "tls_key", k.keyPath, "error", err)
		case changed:
			k.log.Info("TLS certificate reloaded", "tls_cert", k.certPath, "subject", leafSubject(k.current.Load()))
		}
	}
}
