package store

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

func TestConfigURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		cluster bool
		addrs   []string
	}{
		{url: "redis://localhost:6379/0", addrs: []string{"localhost:6379"}},
		{url: "redis://:pw@h:1/2", addrs: []string{"h:1"}},
		{url: "redis://h1:7000,redis://h2:7001, redis://h3:7002", cluster: true, addrs: []string{"h1:7000", "h2:7001", "h3:7002"}},
		{url: "redis+cluster://h1:7000", cluster: true, addrs: []string{"h1:7000"}},
		{url: "rediss+cluster://:pw@h1:7000", cluster: true, addrs: []string{"h1:7000"}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			c := Config{URL: tc.url, Prefix: "p:"}
			require.NoError(t, c.Validate())
			r, err := c.Open()
			require.NoError(t, err)
			defer r.Close()
			_, isCluster := r.Client().(*redis.ClusterClient)
			require.Equal(t, tc.cluster, isCluster)
			opt, err := c.options()
			require.NoError(t, err)
			require.Equal(t, tc.addrs, opt.Addrs)
		})
	}
}

// TestConfigErrors: a bad setting names itself, quotes the value with its
// password masked, says what is wrong and shows the expected form.
func TestConfigErrors(t *testing.T) {
	forms := "; expected " + URLForms
	for _, tc := range []struct {
		name, url, prefix, want string
	}{
		{"not a URL", "bogus", "p:", `redis-url: "bogus" is not a URL` + forms},
		{"host:port only", "redis:6379", "p:", `redis-url: "redis:6379" is not a URL` + forms},
		{"empty", "", "p:", `redis-url: "" is empty` + forms},
		{"no host", "redis:///0", "p:", `redis-url: "redis:///0" has no host` + forms},
		{"scheme", "http://h:1", "p:", `redis-url: "http://h:1" has the scheme http, not redis or rediss` + forms},
		{"port", "redis://h:x/0", "p:", `redis-url: "redis://h:x/0" is not a valid Redis URL: invalid port ":x" after host` + forms},
		{"port, password masked", "redis://:hunter2@h:x/0", "p:", `redis-url: "redis://:xxxxx@h:x/0" is not a valid Redis URL: invalid port ":x" after host` + forms},
		{"database", "redis://h:6379/zero", "p:", `redis-url: "redis://h:6379/zero" is not a valid Redis URL: invalid database number: "zero"` + forms},
		{"second seed", "redis://:hunter2@h1:7000,h2:7001", "p:", `redis-url: "h2:7001" is not a URL (seed 2 of 2)` + forms},
		{"cluster database", "redis://:hunter2@h1:7000/3,redis://h2:7001/3", "p:",
			`redis-url: "redis://:xxxxx@h1:7000/3,redis://h2:7001/3" names database 3, but a Redis Cluster has only database 0` + forms},
		{"prefix", "redis://h:1/0", "", `redis-prefix: "" is empty; expected a prefix such as freshet: (keys would collide with other data)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{URL: tc.url, Prefix: tc.prefix}
			err := c.Validate()
			require.EqualError(t, err, tc.want)
			var se *config.SettingError
			require.ErrorAs(t, err, &se)
			if tc.prefix != "" {
				_, err = c.Open()
				require.EqualError(t, err, tc.want, "Open says what Validate says")
			}
		})
	}
}

// TestSetLoggerQuietsGoRedis: go-redis's messages about failed dials go to
// the structured log at debug level, not to stderr.
func TestSetLoggerQuietsGoRedis(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		var buf bytes.Buffer
		SetLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level})))
		c := Config{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", testenv.FreePort(t)), Prefix: "p:"}
		r, err := c.Open()
		require.NoError(t, err)
		require.Error(t, r.Ping(context.Background()), "nothing listens there")
		require.NoError(t, r.Close())
		if level == slog.LevelDebug {
			require.Contains(t, buf.String(), `"level":"DEBUG","msg":"go-redis: `)
		} else {
			require.Empty(t, buf.String())
		}
	}
	SetLogger(slog.New(slog.DiscardHandler))
}

// TestConfigTLSAndPassword: the TLS and password files are read and checked
// by Validate, each refusal names its setting and never shows a password.
func TestConfigTLSAndPassword(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	ca := testenv.UntrustedCA(t)
	notPEM := write("not.pem", "hello\n")
	pwFile := write("pw", "s3cret\n")
	empty := write("empty", "\n")
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name string
		c    Config
		want string // "" for valid
	}{
		{"tls with a CA", Config{URL: "rediss://h:6380/0", CA: ca}, ""},
		{"tls cluster with a CA", Config{URL: "rediss+cluster://h:7000", CA: ca}, ""},
		{"tls seeds", Config{URL: "rediss://h1:7000,rediss://h2:7001", CA: ca}, ""},
		{"user and password file", Config{URL: "rediss://freshet-featurize@h:6380/0", PasswordFile: pwFile}, ""},
		{"mixed seeds", Config{URL: "rediss://h1:7000,redis://h2:7001"},
			`redis-url: "rediss://h1:7000,redis://h2:7001" mixes redis:// and rediss:// seeds; expected ` + URLForms},
		{"CA with plain redis", Config{URL: "redis://h:6379/0", CA: ca},
			`redis-ca: "` + ca + `" is set, but redis-url is plain redis://, which never uses it; expected a rediss:// (or rediss+cluster://) redis-url for TLS, or no redis-ca`},
		{"cert with plain redis", Config{URL: "redis://h:6379/0", Cert: ca, Key: ca},
			`redis-cert: "` + ca + `" is set, but redis-url is plain redis://, which never uses it; expected a rediss:// (or rediss+cluster://) redis-url for TLS, or no redis-cert`},
		{"CA missing", Config{URL: "rediss://h:6380/0", CA: missing},
			`redis-ca: "` + missing + `" cannot be read: no such file; expected a PEM file of CA certificates (-----BEGIN CERTIFICATE-----)`},
		{"CA not PEM", Config{URL: "rediss://h:6380/0", CA: notPEM},
			`redis-ca: "` + notPEM + `" holds no PEM certificate; expected a PEM file of CA certificates (-----BEGIN CERTIFICATE-----)`},
		{"cert without key", Config{URL: "rediss://h:6380/0", Cert: ca},
			`redis-cert: "` + ca + `" is set without redis-key; expected both redis-cert and redis-key, or neither`},
		{"key without cert", Config{URL: "rediss://h:6380/0", Key: ca},
			`redis-key: "` + ca + `" is set without redis-cert; expected both redis-cert and redis-key, or neither`},
		{"cert and key that are no pair", Config{URL: "rediss://h:6380/0", Cert: ca, Key: notPEM},
			`redis-cert: "` + ca + `" cannot be used with redis-key ` + notPEM + `: tls: failed to find any PEM data in key input; expected a PEM certificate and the PEM file of its private key`},
		{"password twice", Config{URL: "rediss://u:hunter2@h:6380/0", PasswordFile: pwFile},
			`redis-password-file: "` + pwFile + `" is set, but redis-url holds a password too; expected the password in one place: the file (redis-url then names only the user, rediss://user@host:6380/0) or the URL`},
		{"password file missing", Config{URL: "rediss://u@h:6380/0", PasswordFile: missing},
			`redis-password-file: "` + missing + `" cannot be read: no such file; expected a file holding the Redis user's password`},
		{"password file empty", Config{URL: "rediss://u@h:6380/0", PasswordFile: empty},
			`redis-password-file: "` + empty + `" is empty; expected a file holding the Redis user's password`},
		{"user without password", Config{URL: "rediss://u@h:6380/0"},
			`redis-url: "rediss://u@h:6380/0" names the user "u" but no password (give it in the URL or in redis-password-file); expected ` + URLForms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Prefix = "p:"
			err := tc.c.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				r, err := tc.c.Open()
				require.NoError(t, err)
				require.NoError(t, r.Close())
				return
			}
			require.EqualError(t, err, tc.want)
			require.NotContains(t, err.Error(), "hunter2")
			var se *config.SettingError
			require.ErrorAs(t, err, &se)
			_, err = tc.c.Open()
			require.EqualError(t, err, tc.want, "Open says what Validate says")
		})
	}
}

// TestConfigTLSOptions: a rediss:// client speaks TLS 1.2 at least, trusts
// the CA given, names the URL's host, and takes its password from the file,
// read afresh for each connection, less one final newline.
func TestConfigTLSOptions(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte("first\n"), 0o600))
	c := Config{URL: "rediss://freshet-featurize@redis.example:6380/0", CA: testenv.UntrustedCA(t), PasswordFile: pwFile, Prefix: "p:"}
	opt, err := c.options()
	require.NoError(t, err)
	require.Equal(t, uint16(tls.VersionTLS12), opt.TLSConfig.MinVersion)
	require.Equal(t, "redis.example", opt.TLSConfig.ServerName)
	require.NotNil(t, opt.TLSConfig.RootCAs)
	require.NotNil(t, opt.Dialer)
	require.Empty(t, opt.Password)
	user, pw, err := opt.CredentialsProviderContext(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"freshet-featurize", "first"}, []string{user, pw})
	require.NoError(t, os.WriteFile(pwFile, []byte("second"), 0o600))
	_, pw, err = opt.CredentialsProviderContext(context.Background())
	require.NoError(t, err)
	require.Equal(t, "second", pw, "a rotated password is read for the next connection")

	plain, err := (&Config{URL: "redis://h:6379/0", Prefix: "p:"}).options()
	require.NoError(t, err)
	require.Nil(t, plain.TLSConfig)
	require.Nil(t, plain.Dialer, "plain text keeps go-redis's dialer")
}

// TestConfigNeverShowsPasswords: the flags' values as config.Effective logs
// them (and freshet config prints them) hold no password, and a password
// file's content is never read into a flag.
func TestConfigNeverShowsPasswords(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"--redis-url", "rediss://u:hunter2@h:6380/0", "--redis-ca", "/ca.pem"}))
	got := fmt.Sprint(config.Effective(fs))
	require.NotContains(t, got, "hunter2")
	require.Contains(t, got, "rediss://u:xxxxx@h:6380/0")
	for _, name := range []string{"redis-ca", "redis-cert", "redis-key", "redis-password-file"} {
		require.NotNil(t, fs.Lookup(name), name)
	}
}
