package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOutputIsBash: what composeenv prints evaluates in bash to the
// instances' arrays, whatever characters the values hold.
func TestOutputIsBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	var out bytes.Buffer
	stack := filepath.Join("..", "docker-compose.yml")
	require.NoError(t, run([]string{"-f", stack, "-bin", "/opt/it's here",
		"-addr", "kafka:9092=127.0.0.1:19092", "-addr", "redis:6379=127.0.0.1:16379",
		"-env", `FRESHET_TOPIC_PREFIX=a "b" $c.`}, &out))
	script := out.String() + `
printf '%s\n' "${compose_instances[*]}" "${compose_serve_cmd[*]}" "$compose_featurize_2_url"
printf '%s\n' "${compose_ingest_env[@]}"
`
	cmd := exec.Command(bash, "-c", script)
	cmd.Stderr = os.Stderr
	got, err := cmd.Output()
	require.NoError(t, err, script)
	lines := strings.Split(strings.TrimSpace(string(got)), "\n")
	require.Equal(t, "featurize_1 featurize_2 ingest serve", lines[0])
	require.Equal(t, "serve", lines[1])
	require.True(t, strings.HasPrefix(lines[2], "http://127.0.0.1:"), lines[2])
	require.Contains(t, lines[3:], `FRESHET_TOPIC_PREFIX=a "b" $c.`)
	require.Contains(t, lines[3:], `PATH=/opt/it's here`)
	require.Contains(t, lines[3:], `FRESHET_KAFKA_BROKERS=127.0.0.1:19092`)
}
