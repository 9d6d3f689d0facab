package store

// tls.go owns how the store reaches its server securely: the TLS settings
// of a rediss:// URL (the CA, a client certificate, TLS 1.2 at least), the
// dialer whose errors say that a TLS handshake failed, and the password
// file.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/freshet-ml/freshet/pipeline/config"
)

// TLSError is a TLS handshake with a Redis server that failed: the server
// does not speak TLS, or its certificate is not one the client trusts.
type TLSError struct {
	Addr string // host:port
	Err  error
	// PlainText is set when the server, silent to the handshake,
	// answered a plain-text PING instead.
	PlainText bool
}

// Error says which server the handshake failed with, why, and what usually
// causes it.
func (e *TLSError) Error() string {
	msg := "TLS handshake with redis at " + e.Addr + " failed: " + e.Err.Error()
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
	)
	switch {
	case e.PlainText:
		msg += " (the server answered a plain-text PING instead: it is a plain-text Redis port; rediss:// needs a port with TLS, redis:// is plain text)"
	case errors.As(e.Err, &unknown):
		msg += " (the server's certificate is not signed by a CA of redis-ca, or of the system's roots without it)"
	case errors.As(e.Err, &hostname):
		msg += " (the server's certificate does not name the host of redis-url)"
	case errors.As(e.Err, &invalid):
		msg += " (the server's certificate is expired or not valid for a server)"
	case errors.As(e.Err, &record), errors.Is(e.Err, io.EOF), errors.Is(e.Err, io.ErrUnexpectedEOF), isReset(e.Err):
		msg += " (is it a plain-text port? rediss:// needs a Redis port with TLS, redis:// is plain text)"
	}
	return msg
}

func (e *TLSError) Unwrap() error { return e.Err }

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset by peer")
}

// minTLS is the oldest TLS version the store speaks.
const minTLS = tls.VersionTLS12

// tlsConfig completes go-redis's TLS configuration of a rediss:// URL
// (which names the server) with the CA, the client certificate and the
// minimum version.
func (c *Config) tlsConfig(base *tls.Config) (*tls.Config, error) {
	cfg := base.Clone()
	cfg.MinVersion = max(cfg.MinVersion, minTLS)
	if c.CA != "" {
		pool, err := config.CAPool("redis-ca", c.CA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if c.Cert != "" {
		pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, &config.SettingError{Setting: "redis-cert", Value: c.Cert,
				Problem:  "cannot be used with redis-key " + c.Key + ": " + err.Error(),
				Expected: "a PEM certificate and the PEM file of its private key"}
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// readPassword reads a password file: its content, less one final newline
// (a file written by echo, or a Kubernetes secret, ends with one).
func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", &config.SettingError{Setting: "redis-password-file", Value: path, Problem: "cannot be read: " + config.FileProblem(err),
			Expected: "a file holding the Redis user's password"}
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return "", &config.SettingError{Setting: "redis-password-file", Value: path, Problem: "is empty",
			Expected: "a file holding the Redis user's password"}
	}
	return string(b), nil
}

// keepAlive is go-redis's own policy for its dialer: probe after 30 s
// idle (below usual load balancer and NAT timeouts), give up after three
// unanswered probes 5 s apart.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3}

// tlsDialer dials a server and completes the TLS handshake within timeout,
// so that a failed handshake is a *TLSError saying so (go-redis's own dialer
// reports only the cause, often a bare EOF).
func tlsDialer(cfg *tls.Config, timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout, KeepAliveConfig: keepAlive}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(conn, cfg)
		if err := handshakeOrPlain(ctx, tc, addr, timeout); err != nil {
			_ = conn.Close()
			return nil, err
		}
		return tc, nil
	}
}

// plainAfter is how long a TLS handshake goes unanswered before the server
// is asked whether it speaks plain-text Redis.
const plainAfter = time.Second

// handshakeOrPlain completes tc's handshake within timeout, or returns a
// *TLSError. A plain-text Redis takes the ClientHello for the start of an
// inline command and waits for its end, so its handshake would only time
// out: after plainAfter without an answer the server is asked a plain
// PING on another connection, and one that answers ends the wait at
// once. A slow TLS server (a loaded machine) gets the whole timeout.
func handshakeOrPlain(ctx context.Context, tc *tls.Conn, addr string, timeout time.Duration) error {
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tc.HandshakeContext(hctx) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(min(plainAfter, timeout)):
		if speaksPlainRedis(context.WithoutCancel(ctx), addr) {
			cancel()
			<-done
			return &TLSError{Addr: addr, Err: fmt.Errorf("no TLS answer within %v", plainAfter), PlainText: true}
		}
		err = <-done
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("no answer within %v: %w", timeout, err)
	}
	return &TLSError{Addr: addr, Err: err}
}

// handshake dials addr and completes a TLS handshake with cfg within
// timeout: a failure is a *TLSError; a server that cannot be dialed is
// (nil, false).
func handshake(ctx context.Context, addr string, cfg *tls.Config, timeout time.Duration) (reached bool, err error) {
	conn, err := tlsDialer(cfg, timeout)(ctx, "tcp", addr)
	var te *TLSError
	switch {
	case err == nil:
		_ = conn.Close()
		return true, nil
	case errors.As(err, &te):
		return true, err
	}
	return false, nil
}

// speaksPlainRedis reports whether the server at addr answers a plain-text
// PING as Redis does (+PONG, or an error such as -NOAUTH).
func speaksPlainRedis(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return false
	}
	return b[0] == '+' || b[0] == '-'
}

// speaksTLS reports whether the server at addr completes a TLS handshake,
// certificate unchecked: what a plain-text client that got EOF at once
// has met.
func speaksTLS(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	d := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: minTLS}} //nolint:gosec // only asks whether the port speaks TLS
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

// tlsSettingsError refuses TLS files with a plain-text URL.
func (c *Config) tlsSettingsError() error {
	for _, s := range []struct{ name, value string }{{"redis-ca", c.CA}, {"redis-cert", c.Cert}, {"redis-key", c.Key}} {
		if s.value != "" {
			return &config.SettingError{Setting: s.name, Value: s.value,
				Problem:  "is set, but redis-url is plain redis://, which never uses it",
				Expected: "a rediss:// (or rediss+cluster://) redis-url for TLS, or no " + s.name}
		}
	}
	return nil
}

// checkFiles checks the settings of files that go with the URL: the
// certificate and key together, TLS files only with TLS, and one password.
func (c *Config) checkFiles(tlsURL, urlPassword bool) error {
	switch {
	case c.Cert != "" && c.Key == "":
		return &config.SettingError{Setting: "redis-cert", Value: c.Cert, Problem: "is set without redis-key", Expected: "both redis-cert and redis-key, or neither"}
	case c.Key != "" && c.Cert == "":
		return &config.SettingError{Setting: "redis-key", Value: c.Key, Problem: "is set without redis-cert", Expected: "both redis-cert and redis-key, or neither"}
	case !tlsURL:
		if err := c.tlsSettingsError(); err != nil {
			return err
		}
	}
	if c.PasswordFile != "" {
		if urlPassword {
			return &config.SettingError{Setting: "redis-password-file", Value: c.PasswordFile,
				Problem:  "is set, but redis-url holds a password too",
				Expected: "the password in one place: the file (redis-url then names only the user, rediss://user@host:6380/0) or the URL"}
		}
		if _, err := readPassword(c.PasswordFile); err != nil {
			return err
		}
	}
	return nil
}

// fmtUser is the user of a client, for errors.
func fmtUser(u string) string {
	if u == "" {
		return "default"
	}
	return fmt.Sprintf("%q", u)
}
