package store

import (
	"context"
	"math/rand/v2"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/registry"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// These tests run against the TLS-only Redis of
// `scripts/redis-local.sh start tls`, whose users are set from the ACL lines
// of docs/operations.md; they are skipped without its variables.

// openTLS opens the store with c, its prefix one of the test's own under
// freshet: (the users' key pattern), and closes it at cleanup.
func openTLS(t *testing.T, c Config) *Redis {
	t.Helper()
	c.Prefix = testenv.Unique("freshet:test-")
	require.NoError(t, c.Validate())
	r, err := c.Open()
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestTLSFeaturizeUserAppliesAndReads(t *testing.T) {
	env := testenv.RedisTLSEnv(t)
	pw := env.Password(t, env.PasswordFile)
	for name, c := range map[string]Config{
		"password file":               {URL: env.URL, CA: env.CA, PasswordFile: env.PasswordFile},
		"password in the URL":         {URL: testenv.WithPassword(t, env.URL, pw), CA: env.CA},
		"client certificate":          {URL: env.URL, CA: env.CA, PasswordFile: env.PasswordFile, Cert: env.ClientCert, Key: env.ClientKey},
		"cluster":                     {URL: env.ClusterURL, CA: env.CA, PasswordFile: env.PasswordFile},
		"cluster, client certificate": {URL: env.ClusterURL, CA: env.CA, PasswordFile: env.PasswordFile, Cert: env.ClientCert, Key: env.ClientKey},
	} {
		t.Run(name, func(t *testing.T) {
			if c.URL == "" {
				t.Skip("FRESHET_TEST_REDIS_TLS_CLUSTER_URL is unset: scripts/redis-local.sh start tls prints it")
			}
			ctx := context.Background()
			r := openTLS(t, c)
			require.NoError(t, r.CheckWriter(ctx))
			require.NoError(t, r.CheckReader(ctx))
			l := testLayout(t)
			s := stream(t, l, rand.New(rand.NewPCG(3, 3)), 200)
			applied, _ := applyInBatches(t, r, l, s, []int{40, 41, 150})
			require.Equal(t, len(s), applied)
			requireStateMatches(t, r, l, s)

			require.NoError(t, r.SaveMarks(ctx, "g", "topic", map[int]Mark{0: {Offset: 5, Time: 7}}))
			marks, err := r.LoadMarks(ctx, "g", "topic")
			require.NoError(t, err)
			require.Equal(t, map[int]Mark{0: {Offset: 5, Time: 7}}, marks)
			require.NoError(t, r.ClearMarks(ctx, "g", "topic"))
			n, err := r.ClearView(ctx, l.View.Name, l.Fingerprint)
			require.NoError(t, err)
			require.Equal(t, int64(3), n, "rebuild --clear deletes the three entities")
			// INFO is allowed: the restart watch judged the server.
			require.NoError(t, r.Ping(ctx))
			masters := 1
			if c.URL == env.ClusterURL {
				masters = 3 // the cluster of redis-local.sh: every master is judged
			}
			require.Len(t, r.watch.seen, masters)
		})
	}
}

func TestTLSReadOnlyUser(t *testing.T) {
	env := testenv.RedisTLSEnv(t)
	t.Run("server", func(t *testing.T) { readOnlyUser(t, env, env.URL, env.ReadOnlyURL) })
	t.Run("cluster", func(t *testing.T) {
		if env.ClusterURL == "" {
			t.Skip("FRESHET_TEST_REDIS_TLS_CLUSTER_URL is unset: scripts/redis-local.sh start tls prints it")
		}
		readOnlyUser(t, env, env.ClusterURL, env.ClusterReadOnlyURL)
	})
}

// readOnlyUser: serve's user reads what featurize's wrote, and can write
// nothing, at url and roURL.
func readOnlyUser(t *testing.T, env testenv.RedisTLS, url, roURL string) {
	ctx := context.Background()
	w := openTLS(t, Config{URL: url, CA: env.CA, PasswordFile: env.PasswordFile})
	ro := openTLS(t, Config{URL: roURL, CA: env.CA, PasswordFile: env.ReadOnlyPasswordFile})
	ro.prefix = w.prefix
	l := testLayout(t)
	s := stream(t, l, rand.New(rand.NewPCG(4, 4)), 100)
	applyInBatches(t, w, l, s, nil)

	require.NoError(t, ro.CheckReader(ctx))
	requireStateMatches(t, ro, l, s)

	_, err := ro.Apply(ctx, l, units(l, s))
	require.ErrorContains(t, err, "NOPERM")

	// The registry: featurize's user records, serve's reads and may not
	// record.
	form := registry.Of(testenv.Registry(t))
	require.NoError(t, w.Record(ctx, form, time.Now()))
	d, ok, err := ro.Deployed(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, form.Version(), d.Version)
	require.ErrorContains(t, ro.Record(ctx, form, time.Now()), "NOPERM")

	err = ro.CheckWriter(ctx)
	require.Error(t, err)
	t.Log(err)
	require.Contains(t, err.Error(), `redis user "freshet-serve" may not load featurize's scripts (SCRIPT LOAD): NOPERM this user has no permissions to run the 'script|load' command`)
	require.Contains(t, err.Error(), "NOPERM")
	require.Contains(t, err.Error(), "docs/operations.md")
}

func TestTLSWrongPassword(t *testing.T) {
	env := testenv.RedisTLSEnv(t)
	for name, c := range map[string]Config{
		"in the URL": {URL: testenv.WithPassword(t, env.URL, "not-the-password"), CA: env.CA},
		"in a file":  {URL: env.URL, CA: env.CA, PasswordFile: env.ReadOnlyPasswordFile}, // serve's
	} {
		t.Run(name, func(t *testing.T) {
			r := openTLS(t, c)
			start := time.Now()
			err := r.CheckWriter(context.Background())
			require.Less(t, time.Since(start), 2*time.Second, "a wrong password is known at once")
			require.Error(t, err)
			t.Log(err)
			require.Contains(t, err.Error(), `authentication of redis user "freshet-featurize" failed`)
			require.Contains(t, err.Error(), "WRONGPASS")
			require.NotContains(t, err.Error(), "not-the-password")
			require.NotContains(t, err.Error(), env.Password(t, env.ReadOnlyPasswordFile))
			require.ErrorContains(t, r.CheckReader(context.Background()), "authentication of redis user")
		})
	}
}

func TestTLSUserWithoutPassword(t *testing.T) {
	env := testenv.RedisTLSEnv(t)
	c := Config{URL: env.URL, CA: env.CA, Prefix: "freshet:"}
	require.ErrorContains(t, c.Validate(), `names the user "freshet-featurize" but no password`)
}

func TestTLSPlainURLToTLSPort(t *testing.T) {
	env := testenv.RedisTLSEnv(t)
	addr := env.Addr(t)
	r := openTLS(t, Config{URL: "redis://" + addr + "/0"})
	start := time.Now()
	err := r.CheckReader(context.Background())
	require.Error(t, err)
	t.Log(err, time.Since(start))
	require.Less(t, time.Since(start), 3*time.Second)
	require.EqualError(t, err, "redis at "+addr+" speaks TLS, but redis-url is plain redis:// (EOF): use rediss://")
}

func TestTLSToPlainPort(t *testing.T) {
	env := testenv.RedisTLSEnv(t)
	plain, _ := testenv.Redis(t)
	u, err := url.Parse(plain)
	require.NoError(t, err)
	r := openTLS(t, Config{URL: "rediss://" + u.Host + "/0", CA: env.CA})
	start := time.Now()
	err = r.CheckReader(context.Background())
	require.Error(t, err)
	t.Log(err, time.Since(start))
	require.Less(t, time.Since(start), 3*time.Second)
	require.ErrorContains(t, err, "TLS handshake with redis at "+u.Host+" failed: ")
	require.ErrorContains(t, err, "(the server answered a plain-text PING instead: it is a plain-text Redis port; rediss:// needs a port with TLS, redis:// is plain text)")
	var te *TLSError
	require.ErrorAs(t, err, &te)
	// Every command says so, not only the check (after the dial timeout).
	err = r.Ping(context.Background())
	require.ErrorContains(t, err, "TLS handshake with redis at "+u.Host+" failed: ")
	require.ErrorContains(t, err, "it is a plain-text Redis port")
}

func TestTLSUntrustedCA(t *testing.T) {
	env := testenv.RedisTLSEnv(t)
	for name, ca := range map[string]string{"another CA": testenv.UntrustedCA(t), "the system's roots": ""} {
		t.Run(name, func(t *testing.T) {
			r := openTLS(t, Config{URL: env.URL, CA: ca, PasswordFile: env.PasswordFile})
			err := r.CheckWriter(context.Background())
			require.Error(t, err)
			t.Log(err)
			require.ErrorContains(t, err, "TLS handshake with redis at "+env.Addr(t)+" failed: tls: failed to verify certificate: x509: certificate signed by unknown authority")
			require.ErrorContains(t, err, "(the server's certificate is not signed by a CA of redis-ca, or of the system's roots without it)")
		})
	}
}
