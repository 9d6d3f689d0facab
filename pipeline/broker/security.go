package broker

// security.go owns how freshet's Kafka clients reach a secured cluster: TLS
// (the brokers' CA, optionally a client certificate) and SASL (PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512). It builds the one kafka.Dialer (consumer
// groups) and the one kafka.RoundTripper (kafka.Client, kafka.Writer) every
// client takes, and words what goes wrong with them, so that a wrong
// password or an untrusted certificate says so at once instead of looking
// like a broker that is not up yet.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/freshet-ml/freshet/pipeline/config"
)

// Security is how a client authenticates the brokers and itself: TLS and
// SASL. The zero value is plaintext without SASL. It is comparable: equal
// settings share one loaded TLS configuration and one connection pool.
type Security struct {
	// TLS connects over TLS; CA, Cert and Key need it.
	TLS bool
	// CA is a PEM file of the CA certificates the brokers' certificates
	// must chain to; empty trusts the system's roots.
	CA string
	// Cert and Key are PEM files of a client certificate and its private
	// key, for brokers that require one; both or neither.
	Cert, Key string
	// SASL is the mechanism: "" (none), "plain", "scram-sha-256" or
	// "scram-sha-512".
	SASL string
	// Username is the SASL user.
	Username string
	// Password is the SASL password; PasswordFile, a file holding it,
	// is the alternative that keeps it out of the environment.
	Password     Secret
	PasswordFile string
}

// The SASL mechanisms, as kafka-sasl names them.
const (
	SASLPlain       = "plain"
	SASLScramSHA256 = "scram-sha-256"
	SASLScramSHA512 = "scram-sha-512"
)

var mechanisms = []string{SASLPlain, SASLScramSHA256, SASLScramSHA512}

// Secret is a setting that must never be printed: its String (what flag
// usage, config.Effective, fmt and slog show) is a mask, or empty when
// unset. Reveal gives the value to whoever must send it.
type Secret string

// masked stands for a secret that is set; config.Mask uses the same.
const masked = "xxxxx"

// String implements flag.Value and fmt.Stringer: the mask, never the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return masked
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// LogValue keeps slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Set implements flag.Value.
func (s *Secret) Set(v string) error {
	*s = Secret(v)
	return nil
}

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

var (
	_ flag.Value     = (*Secret)(nil)
	_ slog.LogValuer = Secret("")
)

// RegisterFlags registers the TLS and SASL settings, off by default.
// Config.RegisterFlags calls it; a tool that names its brokers its own way
// calls it alone.
func (s *Security) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&s.TLS, "kafka-tls", false, "connect to the Kafka brokers over TLS")
	fs.StringVar(&s.CA, "kafka-ca", "", "PEM file of the CA certificates that sign the Kafka brokers' certificates (with kafka-tls; default: the system's roots)")
	fs.StringVar(&s.Cert, "kafka-cert", "", "PEM file of a client certificate, for brokers that require one (with kafka-tls and kafka-key)")
	fs.StringVar(&s.Key, "kafka-key", "", "PEM file of the private key of kafka-cert")
	fs.StringVar(&s.SASL, "kafka-sasl", "", "SASL mechanism: plain, scram-sha-256 or scram-sha-512 (default: no SASL)")
	fs.StringVar(&s.Username, "kafka-username", "", "SASL user name (with kafka-sasl)")
	fs.Var(&s.Password, "kafka-password", "SASL password (never printed; kafka-password-file keeps it out of the environment)")
	fs.StringVar(&s.PasswordFile, "kafka-password-file", "", "file holding the SASL password (its first line), instead of kafka-password")
}

// Env returns the FRESHET_* variables that give a freshet program these
// settings, as KEY=value entries: for a harness that starts the services.
func (s Security) Env() []string {
	var env []string
	add := func(flag, v string) {
		if v != "" {
			env = append(env, config.EnvName(flag)+"="+v)
		}
	}
	if s.TLS {
		add("kafka-tls", "true")
	}
	add("kafka-ca", s.CA)
	add("kafka-cert", s.Cert)
	add("kafka-key", s.Key)
	add("kafka-sasl", s.SASL)
	add("kafka-username", s.Username)
	add("kafka-password", s.Password.Reveal())
	add("kafka-password-file", s.PasswordFile)
	return env
}

// Validate reports the first invalid TLS or SASL setting as a
// *config.SettingError, reading the files they name: CA, client
// certificate and key, password file.
func (s Security) Validate() error {
	if err := s.check(); err != nil {
		return err
	}
	_, err := s.load()
	return err
}

// check is what Validate can say without reading a file.
func (s Security) check() error {
	mech := strings.ToLower(s.SASL)
	switch {
	case mech != "" && !isMechanism(mech):
		e := &config.SettingError{Setting: "kafka-sasl", Value: s.SASL, Problem: "is not a SASL mechanism", Expected: "plain, scram-sha-256 or scram-sha-512"}
		if m := config.Suggest(mech, mechanisms); m != "" {
			e.Problem += "; did you mean " + m + "?"
		}
		return e
	case mech == "" && s.Username != "":
		return needs("kafka-username", s.Username, "kafka-sasl")
	case mech == "" && s.Password != "":
		return needs("kafka-password", masked, "kafka-sasl")
	case mech == "" && s.PasswordFile != "":
		return needs("kafka-password-file", s.PasswordFile, "kafka-sasl")
	case mech != "" && s.Username == "":
		return &config.SettingError{Setting: "kafka-username", Problem: "is empty but kafka-sasl is " + mech, Expected: "the SASL user name"}
	case s.Password != "" && s.PasswordFile != "":
		return &config.SettingError{Setting: "kafka-password", Value: masked, Problem: "is set together with kafka-password-file", Expected: "one of them, not both"}
	case mech != "" && s.Password == "" && s.PasswordFile == "":
		return &config.SettingError{Setting: "kafka-password", Problem: "is empty, and so is kafka-password-file, but kafka-sasl is " + mech, Expected: "the SASL password, best as a file: kafka-password-file"}
	case !s.TLS && s.CA != "":
		return needs("kafka-ca", s.CA, "kafka-tls")
	case !s.TLS && s.Cert != "":
		return needs("kafka-cert", s.Cert, "kafka-tls")
	case !s.TLS && s.Key != "":
		return needs("kafka-key", s.Key, "kafka-tls")
	case s.Cert != "" && s.Key == "":
		return &config.SettingError{Setting: "kafka-cert", Value: s.Cert, Problem: "is set without kafka-key", Expected: "both: the client certificate and its private key, PEM files"}
	case s.Key != "" && s.Cert == "":
		return &config.SettingError{Setting: "kafka-key", Value: s.Key, Problem: "is set without kafka-cert", Expected: "both: the client certificate and its private key, PEM files"}
	}
	return nil
}

func needs(setting, value, other string) error {
	return &config.SettingError{Setting: setting, Value: value, Problem: "is set but " + other + " is not", Expected: "it with " + other + ", or neither"}
}

func isMechanism(m string) bool {
	for _, k := range mechanisms {
		if m == k {
			return true
		}
	}
	return false
}

// loaded is what a Security's files and mechanism build, once per distinct
// settings: clients made from equal settings share the transport's pool.
type loaded struct {
	tls       *tls.Config
	mech      sasl.Mechanism
	transport kafka.RoundTripper
}

var cache = struct {
	sync.Mutex
	m map[Security]*loaded
}{m: map[Security]*loaded{}}

// load reads the files and builds the mechanism, or returns the cached
// result of an earlier success. Files are read once per process: a rotated
// CA or password takes a restart.
func (s Security) load() (*loaded, error) {
	cache.Lock()
	defer cache.Unlock()
	if l, ok := cache.m[s]; ok {
		return l, nil
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	l := &loaded{}
	var err error
	if s.TLS {
		if l.tls, err = s.tlsConfig(); err != nil {
			return nil, err
		}
	}
	if s.SASL != "" {
		if l.mech, err = s.mechanism(); err != nil {
			return nil, err
		}
	}
	l.transport = &explaining{
		rt:  &kafka.Transport{DialTimeout: dialTimeout, TLS: l.tls, SASL: l.mech, ClientID: "freshet"},
		sec: s,
	}
	cache.m[s] = l
	return l, nil
}

// dialTimeout bounds a connection's set-up: TCP, TLS handshake and SASL
// exchange, so a broker that never answers the handshake fails in seconds.
const dialTimeout = 10 * time.Second

func (s Security) tlsConfig() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CA != "" {
		pool, err := config.CAPool("kafka-ca", s.CA)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if s.Cert != "" {
		pair, err := tls.LoadX509KeyPair(s.Cert, s.Key)
		if err != nil {
			return nil, &config.SettingError{Setting: "kafka-cert", Value: s.Cert, Problem: "does not load with kafka-key " + strconv.Quote(s.Key) + ": " + config.FileProblem(err),
				Expected: "a PEM certificate and the PEM private key it was issued for"}
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

func (s Security) mechanism() (sasl.Mechanism, error) {
	pw := s.Password.Reveal()
	if s.PasswordFile != "" {
		b, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return nil, &config.SettingError{Setting: "kafka-password-file", Value: s.PasswordFile, Problem: "cannot be read: " + config.FileProblem(err), Expected: "a file holding the SASL password"}
		}
		pw, _, _ = strings.Cut(string(b), "\n")
		if pw = strings.TrimSuffix(pw, "\r"); pw == "" {
			return nil, &config.SettingError{Setting: "kafka-password-file", Value: s.PasswordFile, Problem: "has an empty first line", Expected: "a file holding the SASL password"}
		}
	}
	switch strings.ToLower(s.SASL) {
	case SASLPlain:
		return plain.Mechanism{Username: s.Username, Password: pw}, nil
	default:
		algo := scram.SHA512
		if strings.EqualFold(s.SASL, SASLScramSHA256) {
			algo = scram.SHA256
		}
		m, err := scram.Mechanism(algo, s.Username, pw)
		if err != nil {
			// SASLprep refuses the user name or password (a control
			// character, say): said without the password.
			return nil, &config.SettingError{Setting: "kafka-username", Value: s.Username, Problem: "or the password cannot be used with " + strings.ToUpper(s.SASL) + ": " + err.Error(), Expected: "printable user name and password"}
		}
		return m, nil
	}
}

// Transport returns the round tripper of every kafka.Client and
// kafka.Writer with these settings: one per distinct settings, so clients
// share its connections. Its errors name a refused SASL exchange or TLS
// handshake (ErrSecurity). Settings that do not load (Validate says why)
// give a transport whose every request fails with that reason.
func (s Security) Transport() kafka.RoundTripper {
	l, err := s.load()
	if err != nil {
		return failed{err}
	}
	return l.transport
}

// Dialer returns the dialer of the connections a kafka.Reader (a consumer
// group) opens itself. Settings that do not load give a dialer whose every
// connection fails with the reason.
func (s Security) Dialer() *kafka.Dialer {
	d := &kafka.Dialer{Timeout: dialTimeout, DualStack: true, ClientID: "freshet"}
	l, err := s.load()
	if err != nil {
		d.DialFunc = func(context.Context, string, string) (net.Conn, error) {
			return nil, fmt.Errorf("kafka settings: %w", err)
		}
		return d
	}
	d.TLS, d.SASLMechanism = l.tls, l.mech
	return d
}

// failed is the transport of settings that do not load.
type failed struct{ err error }

func (f failed) RoundTrip(context.Context, net.Addr, kafka.Request) (kafka.Response, error) {
	return nil, fmt.Errorf("kafka settings: %w", f.err)
}

// ErrSecurity is matched (errors.Is) by every error of a refused SASL
// exchange or TLS handshake: settings or credentials that retrying will not
// fix, unlike a broker that is not up yet. A service that waits for Kafka
// at start fails at once on it.
var ErrSecurity = errors.New("kafka TLS or SASL refused")

// SecurityError is a refused SASL exchange or TLS handshake. Its text starts
// with what failed: "SASL authentication failed: ..." or "TLS handshake:
// ...", and never holds the password.
type SecurityError struct {
	// What failed: "SASL authentication failed" or "TLS handshake".
	What string
	// Detail says why, in words, with a hint at the setting to check.
	Detail string
	// Err is the client's or broker's own error.
	Err error
}

func (e *SecurityError) Error() string { return e.What + ": " + e.Detail }

// Unwrap returns the underlying error.
func (e *SecurityError) Unwrap() error { return e.Err }

// Is matches ErrSecurity.
func (e *SecurityError) Is(target error) bool { return target == ErrSecurity }

// Explain returns err as a *SecurityError when it is a refused SASL exchange
// or TLS handshake with settings s, else err unchanged.
func (s Security) Explain(err error) error {
	if err == nil || errors.Is(err, ErrSecurity) {
		return err
	}
	user := fmt.Sprintf("user %q with %s", s.Username, strings.ToUpper(s.SASL))
	var (
		kerr     kafka.Error
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		header   tls.RecordHeaderError
		op       *net.OpError
	)
	switch {
	case errors.As(err, &kerr) && kerr == kafka.SASLAuthenticationFailed:
		return &SecurityError{What: "SASL authentication failed", Detail: "the broker refused " + user + " (check kafka-username and the password)", Err: err}
	case errors.As(err, &kerr) && kerr == kafka.UnsupportedSASLMechanism:
		return &SecurityError{What: "SASL authentication failed", Detail: "the broker does not offer " + strings.ToUpper(s.SASL) + " on this listener (check kafka-sasl and the broker's sasl.enabled.mechanisms)", Err: err}
	case errors.As(err, &kerr) && kerr == kafka.IllegalSASLState:
		return &SecurityError{What: "SASL authentication failed", Detail: "the broker's listener does not expect SASL (check kafka-sasl and the listener's security protocol)", Err: err}
	case errors.As(err, &unknown):
		return &SecurityError{What: "TLS handshake", Detail: "certificate signed by unknown authority: the broker's certificate does not chain to " + s.caName(), Err: err}
	case errors.As(err, &hostname):
		return &SecurityError{What: "TLS handshake", Detail: strings.TrimPrefix(hostname.Error(), "x509: ") + " (the broker's certificate is for another name: connect by one of its names)", Err: err}
	case errors.As(err, &invalid):
		return &SecurityError{What: "TLS handshake", Detail: strings.TrimPrefix(invalid.Error(), "x509: "), Err: err}
	case errors.As(err, &verify):
		return &SecurityError{What: "TLS handshake", Detail: "cannot verify the broker's certificate: " + verify.Err.Error(), Err: err}
	case errors.As(err, &header):
		return &SecurityError{What: "TLS handshake", Detail: "the broker does not answer in TLS (kafka-tls is set: is this a TLS listener?)", Err: err}
	case !s.TLS && errors.Is(err, io.ErrUnexpectedEOF) && strings.Contains(err.Error(), "expecting TLS"):
		// kafka-go's guess when a plaintext request is answered by a TLS
		// alert: it has no error type of its own.
		return &SecurityError{What: "TLS handshake", Detail: "the broker expects TLS on this listener (set kafka-tls)", Err: err}
	case errors.As(err, &op) && op.Op == "remote error" && strings.Contains(op.Err.Error(), "tls:"):
		return &SecurityError{What: "TLS handshake", Detail: "the broker refused it: " + op.Err.Error() + s.certHint(), Err: err}
	}
	return err
}

func (s Security) caName() string {
	if s.CA == "" {
		return "the system's roots (set kafka-ca to the brokers' CA)"
	}
	return "kafka-ca " + strconv.Quote(s.CA)
}

func (s Security) certHint() string {
	if s.Cert == "" {
		return " (does the listener require a client certificate? set kafka-cert and kafka-key)"
	}
	return " (is kafka-cert signed by a CA the broker trusts?)"
}

// explaining is a transport whose errors say when TLS or SASL refused.
type explaining struct {
	rt  kafka.RoundTripper
	sec Security
}

func (e *explaining) RoundTrip(ctx context.Context, addr net.Addr, req kafka.Request) (kafka.Response, error) {
	res, err := e.rt.RoundTrip(ctx, addr, req)
	return res, e.sec.Explain(err)
}

var _ kafka.RoundTripper = (*explaining)(nil)
