package compose

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCommentedSettingsAreTheProgramsOwn: the settings shown commented
// out in a service's environment (TLS, tokens) are accepted by its
// program, so that uncommenting them works.
func TestCommentedSettingsAreTheProgramsOwn(t *testing.T) {
	p := stack(t, false)
	b, err := os.ReadFile("docker-compose.yml")
	require.NoError(t, err)
	service := regexp.MustCompile(`^  ([a-z][a-z0-9_-]*):\s*$`)
	commented := regexp.MustCompile(`^\s+#\s*(FRESHET_[A-Z0-9_]+):`)
	current, seen := "", map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := service.FindStringSubmatch(line); m != nil {
			current = m[1]
			continue
		}
		if m := commented.FindStringSubmatch(line); m != nil {
			require.NotEmpty(t, current, "%s is commented outside a service", m[1])
			seen[current] = append(seen[current], m[1])
		}
	}
	for _, name := range []string{"ingest", "featurize", "serve"} {
		require.Subset(t, seen[name], []string{"FRESHET_TLS_CERT", "FRESHET_TLS_KEY", "FRESHET_TLS_CLIENT_CA", "FRESHET_TOKENS"},
			"service %s shows how to turn TLS and tokens on", name)
	}
	for name, vars := range seen {
		s, ok := p.Services[name]
		require.True(t, ok, "%s is not a service", name)
		prog, err := ProgramOf(s.Command)
		require.NoError(t, err, "service %s", name)
		for _, v := range vars {
			require.True(t, prog.Accepts(v), "service %s: %s, commented, is not a setting of %s", name, v, prog.Name)
		}
	}
}
