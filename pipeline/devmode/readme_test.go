package devmode

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// readmeCurl is one curl command of the README and the answer it documents
// in the comment lines under it, if any.
type readmeCurl struct {
	line int
	cmd  string
	doc  string
}

// readmeCurls returns every curl command of the README's sh blocks that
// talks to a freshet service on localhost, continuation lines joined.
func readmeCurls(t *testing.T, path string) []readmeCurl {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []readmeCurl
	in, cont := false, ""
	var cur *readmeCurl
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```"):
			in, cont, cur = strings.HasPrefix(line, "```sh"), "", nil
			continue
		case !in:
			continue
		}
		if cont != "" || (strings.HasPrefix(strings.TrimSpace(line), "curl ") && strings.Contains(line, "localhost:808")) {
			cont += strings.TrimSuffix(line, "\\") + " "
			if !strings.HasSuffix(line, "\\") {
				out = append(out, readmeCurl{line: n, cmd: cont})
				cur, cont = &out[len(out)-1], ""
			}
			continue
		}
		if cur != nil && strings.HasPrefix(line, "#") {
			cur.doc += strings.TrimPrefix(line, "#") + "\n"
			continue
		}
		cur = nil
	}
	require.NoError(t, sc.Err())
	return out
}

var docKey = regexp.MustCompile(`"([A-Za-z_][A-Za-z0-9_]*)":`)

// TestReadmeCurls runs every curl example of the README, as written,
// against freshet dev (its ports put in), and checks each answer's shape:
// JSON, an error exactly where the README shows one, and every member name
// the README shows under the command. Numbers and times depend on when it
// runs, so they are not compared.
func TestReadmeCurls(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl on PATH")
	}
	root := testenv.RepoRoot(t)
	curls := readmeCurls(t, filepath.Join(root, "README.md"))
	require.GreaterOrEqual(t, len(curls), 10, "the README's curl examples were not found")

	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) }
	cfg := Config{
		Schemas: filepath.Join(root, "schemas", "example"), KafkaPort: testenv.FreePort(t), RedisPort: testenv.FreePort(t),
		IngestAddr: addr(), FeaturizeAddr: addr(), ServeAddr: addr(),
	}
	startDev(t, cfg)
	ports := strings.NewReplacer("localhost:8080", cfg.ServeAddr, "localhost:8081", cfg.IngestAddr, "localhost:8082", cfg.FeaturizeAddr)
	for _, c := range curls {
		t.Run(fmt.Sprintf("README.md:%d", c.line), func(t *testing.T) {
			cmd := exec.Command("bash", "-c", ports.Replace(c.cmd))
			cmd.Dir = root
			got, err := cmd.Output()
			require.NoError(t, err, "%s", c.cmd)
			var v any
			require.NoError(t, json.Unmarshal(got, &v), "%s\nanswered %q", c.cmd, got)
			body := string(got)
			if strings.Contains(c.doc, `"error"`) {
				require.Contains(t, body, `"error":`, "%s", c.cmd)
			} else {
				require.NotContains(t, body, `"error":`, "%s", c.cmd)
			}
			for _, m := range docKey.FindAllStringSubmatch(c.doc, -1) {
				require.Contains(t, body, `"`+m[1]+`":`, "%s\nthe README shows %q; the answer is %s", c.cmd, m[1], body)
			}
		})
	}
}
