package devmode

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/auth/authtest"
	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// TestDevWithTokens: with --tokens, every curl dev mode prints sends
// $FRESHET_TOKEN and works as printed once it is set to a token of the
// file, and is refused without it; the welcome says which tokens can run
// them.
func TestDevWithTokens(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl on PATH")
	}
	root := testenv.RepoRoot(t)
	f := authtest.New(t, nil, []string{"laptop:serve,ingest", "prometheus:metrics"})
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) }
	cfg := Config{
		Schemas: filepath.Join(root, "schemas", "example"), Event: "transaction",
		KafkaPort: testenv.FreePort(t), RedisPort: testenv.FreePort(t),
		IngestAddr: addr(), FeaturizeAddr: addr(), ServeAddr: addr(), Tokens: f.Guard,
	}
	out := startDev(t, cfg).String()
	require.Contains(t, out, "The APIs require bearer tokens of "+f.Path+" (--tokens)")
	require.Contains(t, out, "(serve: laptop; ingest: laptop)")
	require.Contains(t, out, "export FRESHET_TOKEN=")

	var curls []string
	for _, line := range strings.Split(out, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "curl ") {
			require.Contains(t, line, ` -H "Authorization: Bearer $FRESHET_TOKEN"`)
			curls = append(curls, line)
		}
	}
	require.Len(t, curls, 4, out)
	for _, c := range curls {
		for _, tc := range []struct {
			token string
			want  string
		}{
			{f.Tokens["laptop"], "20"}, // 200 or 202
			{"", "401"},
			{f.Tokens["prometheus"], "403"},
		} {
			cmd := exec.Command("bash", "-c", c+` -o /dev/null -w '%{http_code}'`)
			cmd.Env = append(os.Environ(), "FRESHET_TOKEN="+tc.token)
			got, err := cmd.Output()
			require.NoError(t, err, c)
			require.True(t, strings.HasPrefix(string(got), tc.want), "%s with FRESHET_TOKEN=%q answered %s", c, tc.token, got)
		}
	}
}
