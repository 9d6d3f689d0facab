package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/config"
	"github.com/freshet-ml/freshet/pipeline/httpx"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// newToken returns a fresh token and its line.
func newToken(tb testing.TB, name, scopes string) (token, line string) {
	tb.Helper()
	ss, err := ParseScopes(scopes)
	require.NoError(tb, err)
	token, line, err = New(name, ss)
	require.NoError(tb, err)
	return token, line
}

// writeFile writes lines to path, replacing it whole as an editor does.
func writeFile(tb testing.TB, path string, lines ...string) {
	tb.Helper()
	tmp := path + ".tmp"
	require.NoError(tb, os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	require.NoError(tb, os.Rename(tmp, path))
}

func TestNewTokenRoundTrip(t *testing.T) {
	token, line := newToken(t, "shop-api", "serve,ingest")
	raw, err := base64.RawURLEncoding.DecodeString(token)
	require.NoError(t, err, "a token is unpadded base64url")
	require.Len(t, raw, TokenBytes)
	require.GreaterOrEqual(t, TokenBytes, 32)
	require.True(t, strings.HasPrefix(line, "shop-api ingest,serve sha256:"), line)
	require.NotContains(t, line, token)

	set, err := Parse("tokens", []byte(line+"\n"))
	require.NoError(t, err)
	got := set.Lookup(token)
	require.NotNil(t, got)
	require.Equal(t, "shop-api", got.Name)
	require.True(t, got.Scopes.Has(Serve) && got.Scopes.Has(Ingest) && !got.Scopes.Has(Metrics))
	require.Nil(t, set.Lookup(token+"x"))
	require.Nil(t, set.Lookup(""))

	other, _ := newToken(t, "shop-api", "serve")
	require.NotEqual(t, token, other, "every token is fresh")

	_, _, err = New("has space", Scopes(Serve))
	require.Error(t, err)
	_, _, err = New("ok", 0)
	require.Error(t, err)
}

func TestParse(t *testing.T) {
	token, line := newToken(t, "prometheus", "metrics")
	_, line2 := newToken(t, "feast", "serve")
	hash := strings.Fields(line)[2]
	upper := "ingester ingest SHA256:" + strings.ToUpper(strings.TrimPrefix(strings.Fields(line2)[2], "sha256:"))

	set, err := Parse("f", []byte("# tokens\n\n"+line+"   # scrapes\n\tfeast\tserve\t"+strings.Fields(line2)[2]+"\n"+
		"rotating serve sha256:"+strings.Repeat("ab", 32)+"\nrotating serve sha256:"+strings.Repeat("cd", 32)+"\n"))
	require.NoError(t, err)
	require.Equal(t, 4, set.Len())
	require.Equal(t, []string{"feast", "rotating"}, set.Names(Serve), "a name may hold several tokens while clients move over")
	require.Equal(t, "prometheus", set.Lookup(token).Name)

	set, err = Parse("f", []byte(upper+"\n"))
	require.NoError(t, err, "prefix and hex digits in either case")
	require.Equal(t, 1, set.Len())

	set, err = Parse("f", []byte("partner ingest "+hash+" rate=2.5\n"))
	require.NoError(t, err)
	require.Equal(t, 2.5, set.tokens[0].Rate)

	empty, err := Parse("f", []byte("# nobody yet\n"))
	require.NoError(t, err)
	require.Equal(t, 0, empty.Len())

	for _, tc := range []struct {
		name, content, want string
	}{
		{"two fields", "prometheus metrics\n", "f:1: want NAME SCOPES sha256:HEX [rate=EVENTS_PER_SECOND], got 2 field(s)"},
		{"five fields", "# c\nprometheus ingest " + hash + " rate=1 extra\n", "f:2: want NAME SCOPES sha256:HEX [rate=EVENTS_PER_SECOND], got 5 field(s)"},
		{"fourth field not a rate", "# c\nprometheus metrics " + hash + " extra\n", `f:2: the fourth field must be rate= and the events a second the token may send, got "extra"`},
		{"zero rate", "shop ingest " + hash + " rate=0\n", "f:1: rate=0: want a positive number of events a second, like rate=500"},
		{"negative rate", "shop ingest " + hash + " rate=-5\n", "f:1: rate=-5: want a positive number"},
		{"rate not a number", "shop ingest " + hash + " rate=fast\n", "f:1: rate=fast: want a positive number"},
		{"infinite rate", "shop ingest " + hash + " rate=inf\n", "f:1: rate=inf: want a positive number"},
		{"NaN rate", "shop ingest " + hash + " rate=NaN\n", "f:1: rate=NaN: want a positive number"},
		{"rate without ingest", "feast serve " + hash + " rate=10\n", `f:1: rate= limits the events a token sends to ingest, and this token lacks the "ingest" scope`},
		{"a token pasted", token + "\n", "f:1: want NAME SCOPES sha256:HEX [rate=EVENTS_PER_SECOND], got 1 field(s): if this is a token itself, remove it"},
		{"bad name", "pro/metheus metrics " + hash + "\n", "f:1: a token's name is 1 to 64 letters"},
		{"long name", strings.Repeat("a", 65) + " metrics " + hash + "\n", "f:1: a token's name is 1 to 64 letters"},
		{"misspelt scope", "prometheus metrcs " + hash + "\n", `f:1: unknown scope "metrcs" (scopes: ingest, serve, metrics, admin); did you mean metrics?`},
		{"trailing comma", "prometheus metrics, " + hash + "\n", "f:1: empty scope name"},
		{"empty scope in list", "prometheus metrics,,serve " + hash + "\n", "f:1: empty scope name"},
		{"no prefix", "prometheus metrics " + strings.TrimPrefix(hash, "sha256:") + "\n", "f:1: the third field must be sha256:"},
		{"short hash", "prometheus metrics sha256:abcd\n", "f:1: sha256: wants 64 hex digits, got 4"},
		{"not hex", "prometheus metrics sha256:" + strings.Repeat("zz", 32) + "\n", "f:1: sha256: wants hex digits"},
		{"same token twice", line + "\n\n" + strings.Replace(line, "prometheus", "other", 1) + "\n", "f:3: the same token as line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f", []byte(tc.content))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), token, "an error never quotes a token")
			require.NotContains(t, err.Error(), strings.TrimPrefix(hash, "sha256:"), "nor a hash")
		})
	}

	// Every bad line is named at once.
	_, err = Parse("tokens.txt", []byte(line+"\nx serv "+hash+"\ny\n"))
	require.ErrorContains(t, err, "tokens.txt:2: unknown scope \"serv\"")
	require.ErrorContains(t, err, "tokens.txt:3: want NAME SCOPES")
}

func TestScopes(t *testing.T) {
	ss, err := ParseScopes("admin,ingest,ingest")
	require.NoError(t, err)
	require.Equal(t, "ingest,admin", ss.String())
	require.False(t, ss.Has(Serve) || ss.Has(Metrics), "admin implies no other scope")
	_, err = ParseScopes("")
	require.ErrorContains(t, err, "no scope")
	_, err = ParseScopes("ingest, serve")
	require.ErrorContains(t, err, `unknown scope " serve"`)
	_, err = ParseScopes(strings.Repeat("x", 43))
	require.ErrorContains(t, err, "unknown scope of 43 characters")
	require.Equal(t, []string{"ingest", "serve", "metrics", "admin"}, ScopeNames())
}

// errorBody is the JSON of an error answer.
type errorBody struct {
	Error string `json:"error"`
}

func TestRequire(t *testing.T) {
	serveTok, serveLine := newToken(t, "feast", "serve")
	metricsTok, metricsLine := newToken(t, "prometheus", "metrics")
	adminTok, adminLine := newToken(t, "ops", "admin")
	path := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, path, serveLine, metricsLine, adminLine)
	g, err := Open(path, nil)
	require.NoError(t, err)

	var seen *httpx.Principal
	route := g.Require(Serve)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = httpx.PrincipalOf(r.Context())
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"ok": "yes"})
	}))
	for _, tc := range []struct {
		name   string
		header []string // Authorization values
		status int
		want   string // in the error
		who    string // the principal's token name
	}{
		{"missing", nil, 401, `missing token: send the header "Authorization: Bearer TOKEN"`, ""},
		{"basic", []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+serveTok))}, 401, `malformed Authorization header: want "Bearer TOKEN"`, ""},
		{"bearer alone", []string{"Bearer"}, 401, `no token after "Bearer"`, ""},
		{"bearer and spaces", []string{"Bearer   "}, 401, `no token after "Bearer"`, ""},
		{"two tokens", []string{"Bearer " + serveTok + " " + metricsTok}, 401, "one token without spaces", ""},
		{"two headers", []string{"Bearer " + serveTok, "Bearer " + serveTok}, 401, "sent more than once", ""},
		{"token alone", []string{serveTok}, 401, `want "Bearer TOKEN"`, ""},
		{"unknown", []string{"Bearer " + serveTok[:len(serveTok)-1]}, 401, "unknown token", ""},
		{"wrong scope", []string{"Bearer " + metricsTok}, 403, `token "prometheus" lacks the "serve" scope this route needs (it has: metrics)`, "prometheus"},
		{"admin is no superset", []string{"Bearer " + adminTok}, 403, `lacks the "serve" scope`, "ops"},
		{"right scope", []string{"Bearer " + serveTok}, 200, "", "feast"},
		{"scheme in any case", []string{"bearer " + serveTok}, 200, "", "feast"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen = nil
			r := httptest.NewRequest(http.MethodGet, "/v1/features/v/e", nil)
			ctx, who := httpx.WithPrincipal(r.Context())
			r = r.WithContext(ctx)
			for _, h := range tc.header {
				r.Header.Add("Authorization", h)
			}
			w := httptest.NewRecorder()
			route.ServeHTTP(w, r)
			require.Equal(t, tc.status, w.Code, w.Body.String())
			require.Equal(t, "application/json", w.Header().Get("Content-Type"))
			require.Equal(t, tc.who, who.Token)
			if tc.status == 200 {
				require.Same(t, who, seen, "the route sees the principal")
				return
			}
			require.Nil(t, seen, "a refused request never reaches the route")
			var body errorBody
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body))
			require.Contains(t, body.Error, tc.want)
			for _, tok := range []string{serveTok, metricsTok, adminTok} {
				require.NotContains(t, w.Body.String(), tok, "an answer never quotes a token")
			}
			if tc.status == 401 {
				require.Equal(t, "Bearer", w.Header().Get("WWW-Authenticate"))
			} else {
				require.Empty(t, w.Header().Get("WWW-Authenticate"))
			}
		})
	}

	// Without tokens every route is open.
	var none *Guard
	w := httptest.NewRecorder()
	none.Require(Serve)(route).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	require.Equal(t, 401, w.Code, "the inner route still has its own guard")
	w = httptest.NewRecorder()
	none.Require(Admin)(http.NotFoundHandler()).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	require.Equal(t, 404, w.Code)
	require.NoError(t, none.Run(context.Background()))
	require.Empty(t, none.Path())
}

// status is the status of a request to h with token.
func status(h http.Handler, token string) int {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}

// TestRotation: tokens change with the file, without a restart; a
// malformed rewrite keeps the tokens in force and is logged naming the
// line; SIGHUP reloads at once. The tokens never reach the log.
func TestRotation(t *testing.T) {
	// SIGHUP is delivered to channels, never taken as the signal that ends
	// the process, for as long as the test binary runs: a SIGHUP sent
	// last may reach the runtime after the test returned (once stopped
	// here, it killed the binary in CI: "signal: hangup").
	keep := make(chan os.Signal, 1)
	signal.Notify(keep, syscall.SIGHUP)

	oldTok, oldLine := newToken(t, "client", "serve")
	newTok, newLine := newToken(t, "client", "serve")
	path := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, path, oldLine)
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g, err := Open(path, log, PollEvery(20*time.Millisecond))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	h := g.Require(Serve)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	require.Equal(t, 200, status(h, oldTok))
	require.Equal(t, 401, status(h, newTok))

	writeFile(t, path, "# rotated", newLine)
	require.Eventually(t, func() bool { return status(h, newTok) == 200 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 401, status(h, oldTok), "the old token is revoked")
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "tokens reloaded") }, time.Second, 10*time.Millisecond)

	// A malformed rewrite (a scope misspelt, a token pasted) keeps the
	// tokens in force.
	writeFile(t, path, oldLine, "client serv "+strings.Fields(newLine)[2], newTok)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "malformed tokens file") }, 5*time.Second, 10*time.Millisecond)
	require.Contains(t, logs.String(), path+":2: unknown scope")
	require.Contains(t, logs.String(), path+":3: want NAME SCOPES")
	require.Equal(t, 200, status(h, newTok))
	require.Equal(t, 401, status(h, oldTok))
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, 1, strings.Count(logs.String(), "malformed tokens file"), "an unchanged bad file is reported once")

	// A file missing for a while (replaced by hand) keeps them too.
	require.NoError(t, os.Remove(path))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "cannot read the tokens file") }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 200, status(h, newTok))

	// SIGHUP reloads without waiting for the poll.
	g2, err := Open(filepath.Join(filepath.Dir(path), "second"), log, PollEvery(time.Hour))
	require.Error(t, err, "no such file yet")
	require.Nil(t, g2)
	path2 := filepath.Join(filepath.Dir(path), "second")
	writeFile(t, path2, oldLine)
	g2, err = Open(path2, log, PollEvery(time.Hour))
	require.NoError(t, err)
	go func() { _ = g2.Run(ctx) }()
	h2 := g2.Require(Serve)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	writeFile(t, path2, newLine)
	require.Eventually(t, func() bool {
		require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
		return status(h2, newTok) == 200
	}, 5*time.Second, 50*time.Millisecond)
	require.Contains(t, logs.String(), "SIGHUP: reading the tokens file")

	for _, tok := range []string{oldTok, newTok} {
		require.NotContains(t, logs.String(), tok, "a token never reaches the log")
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	tok, line := newToken(t, "a", "serve")
	good := filepath.Join(dir, "good")
	writeFile(t, good, line)
	bad := filepath.Join(dir, "bad")
	writeFile(t, bad, "# ok", line, "b sreve "+strings.Fields(line)[2])

	for _, tc := range []struct {
		path, want string
	}{
		{"", ""},
		{good, ""},
		{filepath.Join(dir, "missing"), `tokens: "` + filepath.Join(dir, "missing") + `" cannot be read: no such file; expected a file of lines NAME SCOPES sha256:HEX (freshet token new prints one) (set by FRESHET_TOKENS)`},
		{bad, `tokens: "` + bad + `" is malformed: ` + bad + `:3: unknown scope "sreve" (scopes: ingest, serve, metrics, admin); did you mean serve? (set by FRESHET_TOKENS)`},
	} {
		var c Config
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		c.RegisterFlags(fs)
		require.NoError(t, config.ParseLookup(fs, nil, func(k string) (string, bool) {
			return tc.path, k == "FRESHET_TOKENS"
		}))
		err := c.Validate()
		if tc.want == "" {
			require.NoError(t, err)
			continue
		}
		var se *config.SettingError
		require.ErrorAs(t, err, &se)
		se.Env = "FRESHET_TOKENS" // as the command line sets it
		require.Contains(t, err.Error(), tc.want)
		require.NotContains(t, err.Error(), tok)
	}

	// Open logs which: the file and its tokens, or a warning that the
	// API is open; never a token.
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	off := Config{}
	g, err := off.Open(log)
	require.NoError(t, err)
	require.Nil(t, g)
	require.Contains(t, logs.String(), `level=WARN msg="no tokens file (--tokens, FRESHET_TOKENS): the HTTP API is open to anyone who can reach it"`)
	logs.Reset()
	on := Config{Tokens: good}
	require.NoError(t, on.Validate())
	g, err = on.Open(log)
	require.NoError(t, err)
	require.NotNil(t, g.Tokens().Lookup(tok))
	require.Contains(t, logs.String(), "msg=\"bearer tokens required\" tokens_file="+good+" tokens=1 names=a")
	require.NotContains(t, logs.String(), tok)
	unchecked := Config{Tokens: bad}
	_, err = unchecked.Open(log)
	require.ErrorContains(t, err, bad+":3:")
}

// TestBudgets checks Spend's arithmetic against a brute-force reading of
// its promise, over random request sizes and gaps: over every interval a
// token sends at most rate×length + a second's worth + one request, a
// sender that keeps to its rate is never refused, and a refused request
// is told to wait no longer than until it would be admitted.
func TestBudgets(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		rate := []float64{1, 10, 250, 5000}[round%4]
		var b budgets
		start := time.Unix(1_700_000_000, 0)
		now := start
		type sent struct {
			at time.Time
			n  int
		}
		var admitted []sent
		maxN := 0
		for range 400 {
			now = now.Add(time.Duration(rng.ExpFloat64() * float64(200*time.Millisecond)))
			n := 1 + rng.IntN(int(rate*2)+1)
			ok, wait := b.spend("a", rate, n, now)
			if !ok {
				require.Positive(t, wait)
				// Just before wait is over it is still refused; once over, admitted.
				probe := &budgets{paid: map[string]time.Time{"a": b.paid["a"]}}
				if wait > time.Millisecond {
					again, _ := probe.spend("a", rate, n, now.Add(wait-time.Millisecond))
					require.False(t, again, "admitted before the wait it was told")
				}
				again, _ := probe.spend("a", rate, n, now.Add(wait))
				require.True(t, again, "refused after the wait it was told")
				continue
			}
			admitted = append(admitted, sent{now, n})
			maxN = max(maxN, n)
		}
		for i := range admitted {
			total := 0
			for j := i; j < len(admitted); j++ {
				total += admitted[j].n
				length := admitted[j].at.Sub(admitted[i].at).Seconds()
				require.LessOrEqual(t, float64(total), rate*length+rate*burst.Seconds()+float64(maxN)+1e-6,
					"rate %g: %d events in %.3fs", rate, total, length)
			}
		}
	}
	// A sender at its rate, in batches a second apart, is never refused.
	var b budgets
	now := time.Unix(1_700_000_000, 0)
	for range 100 {
		ok, _ := b.spend("steady", 100, 100, now)
		require.True(t, ok)
		now = now.Add(time.Second)
	}
	// Names have their own budgets.
	ok, _ := b.spend("other", 100, 100, now)
	require.True(t, ok)
}
