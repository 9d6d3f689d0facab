package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/freshet-ml/freshet/pipeline/app"
	"github.com/freshet-ml/freshet/pipeline/config"
)

// probe is what `freshet healthcheck` asks, and how it trusts the server.
type probe struct {
	url string
	// ca is a PEM file of the CAs to trust (default: the system roots).
	ca string
	// cert and key are the client pair, presented when the server asks
	// (mutual TLS); by default the service's own, FRESHET_TLS_CERT and
	// FRESHET_TLS_KEY, so that a container's healthcheck presents the pair
	// of the service it runs beside.
	cert, key string
	insecure  bool
}

// healthcheck is `freshet healthcheck URL`: exit 0 when URL answers 2xx.
// Images have no curl; compose healthchecks call this.
//
// With FRESHET_TLS_CERT set (a service's container with TLS on), an
// http:// URL is asked over https, and the server is trusted when it
// presents that very certificate: the healthcheck of a container asks the
// service beside it, whose certificate names a host, not localhost. So the
// same healthcheck works with TLS on or off.
func healthcheck(args []string) error {
	p := probe{}
	fs := flag.NewFlagSet("freshet healthcheck", flag.ContinueOnError)
	fs.StringVar(&p.ca, "ca", "", "PEM file of the CAs to trust for an https:// URL (default: the system roots, and the certificate of --cert itself)")
	fs.StringVar(&p.cert, "cert", os.Getenv("FRESHET_TLS_CERT"), "PEM file of a client certificate, presented when the server asks for one (mutual TLS); "+
		"when set, an http:// URL is asked over https (default: $FRESHET_TLS_CERT, the service's own)")
	fs.StringVar(&p.key, "key", os.Getenv("FRESHET_TLS_KEY"), "PEM file of the private key of --cert (default: $FRESHET_TLS_KEY)")
	fs.BoolVar(&p.insecure, "insecure", false, "do not verify the server's certificate (a test server's self-signed one); never the default")
	cmd := &app.Command{Flags: fs,
		Usage: []string{"freshet healthcheck URL", "freshet healthcheck [--ca FILE] [--cert FILE --key FILE] [--insecure] URL"},
		About: "Exit 0 when URL answers 2xx within 3s, 1 otherwise: the probe of the compose stack's healthchecks\n" +
			"(the image has no curl). With FRESHET_TLS_CERT set, as in a service's container with TLS on, an\n" +
			"http:// URL is asked over https and the service's own certificate is trusted, so that one\n" +
			"healthcheck works with TLS on and off.",
	}
	cmd.Positional = func(line config.Line) error {
		if len(line.Args) != 1 {
			return fmt.Errorf("one URL expected, got %d arguments", len(line.Args))
		}
		p.url = line.Args[0]
		if (p.cert == "") != (p.key == "") {
			return errors.New("--cert and --key go together (FRESHET_TLS_CERT and FRESHET_TLS_KEY by default)")
		}
		return nil
	}
	if err := cmd.Start(args); err != nil {
		return err
	}
	return p.check()
}

// check asks the URL once.
func (p probe) check() error {
	u, err := url.Parse(p.url)
	if err != nil {
		return err
	}
	if u.Scheme == "http" && p.cert != "" {
		u.Scheme = "https" // the service speaks TLS only
	}
	c := http.Client{Timeout: 3 * time.Second}
	if u.Scheme == "https" {
		cfg, err := p.tlsConfig()
		if err != nil {
			return err
		}
		c.Transport = &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	}
	res, err := c.Get(u.String())
	if err != nil {
		var unknown x509.UnknownAuthorityError
		var invalid x509.HostnameError
		if errors.As(err, &unknown) || errors.As(err, &invalid) {
			return fmt.Errorf("%w (trust the server's CA with --ca FILE)", err)
		}
		return err
	}
	_ = res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %d", u, res.StatusCode)
	}
	return nil
}

// tlsConfig trusts --ca (or the system roots), and the certificate of
// --cert when the server presents exactly it; it presents --cert when the
// server asks.
func (p probe) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: p.insecure}
	if p.ca != "" {
		pool, err := config.CAPool("ca", p.ca)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if p.cert == "" {
		return cfg, nil
	}
	pair, err := tls.LoadX509KeyPair(p.cert, p.key)
	if err != nil {
		return nil, fmt.Errorf("--cert %s, --key %s: %w", p.cert, p.key, err)
	}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	if p.insecure {
		return cfg, nil
	}
	// Verify as usual, and else accept the server that presents our own
	// certificate: the service this container runs.
	own := pair.Certificate[0]
	roots := cfg.RootCAs
	cfg.InsecureSkipVerify = true // replaced by VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) > 0 && bytes.Equal(cs.PeerCertificates[0].Raw, own) {
			return nil
		}
		opts := x509.VerifyOptions{Roots: roots, DNSName: cs.ServerName, Intermediates: x509.NewCertPool()}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the server presented no certificate")
		}
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	}
	return cfg, nil
}
