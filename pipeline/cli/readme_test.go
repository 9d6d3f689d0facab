package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// settingsTables returns the Markdown tables of text by the "### " heading
// above each, in order: the rows of each (header and separator included),
// as `freshet config` prints them and the README holds them.
func settingsTables(text string) (titles []string, tables map[string][]string) {
	tables = map[string][]string{}
	title := ""
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "### "):
			title = strings.TrimSpace(strings.TrimPrefix(line, "### "))
			titles = append(titles, title)
			tables[title] = nil
		case title != "" && strings.HasPrefix(line, "|"):
			tables[title] = append(tables[title], strings.TrimSpace(line))
		}
	}
	return titles, tables
}

// configSection is the README's "## Configuration" section, up to the next
// "## " heading.
func configSection(readme string) (string, error) {
	_, rest, ok := strings.Cut(readme, "\n## Configuration\n")
	if !ok {
		return "", fmt.Errorf("no \"## Configuration\" section")
	}
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	return rest, nil
}

// rowKey is a row's first cell: the flag (or "flag" for the header).
func rowKey(row string) string {
	cells := strings.Split(row, "|")
	if len(cells) < 2 {
		return row
	}
	return strings.TrimSpace(cells[1])
}

// configDrift compares the tables of the README's Configuration section
// with what `freshet config` prints (WriteConfig): "" when they are the
// same, otherwise what differs, table by table and row by row.
func configDrift(readme string) (string, error) {
	section, err := configSection(readme)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := WriteConfig(&b); err != nil {
		return "", err
	}
	wantTitles, want := settingsTables(b.String())
	gotTitles, got := settingsTables(section)
	var diff []string
	for _, title := range wantTitles {
		rows, ok := got[title]
		if !ok {
			diff = append(diff, fmt.Sprintf("### %s: no such table in the README; `freshet config` prints:\n    %s", title, strings.Join(want[title], "\n    ")))
			continue
		}
		if d := rowsDrift(rows, want[title]); len(d) > 0 {
			diff = append(diff, "### "+title+":\n"+strings.Join(d, "\n"))
		}
	}
	for _, title := range gotTitles {
		if _, ok := want[title]; !ok {
			diff = append(diff, fmt.Sprintf("### %s: a table of the README that `freshet config` does not print", title))
		}
	}
	if len(diff) == 0 && !slices.Equal(gotTitles, wantTitles) {
		diff = append(diff, fmt.Sprintf("the tables are in another order: README %q, freshet config %q", gotTitles, wantTitles))
	}
	if len(diff) == 0 {
		return "", nil
	}
	return "README.md's ## Configuration disagrees with `go run ./cmd/freshet config`, which prints the programs' own flag sets:\n" +
		strings.Join(diff, "\n") + "\n(paste the output of `go run ./cmd/freshet config` into the README)", nil
}

// rowsDrift lists the rows of got (the README's) that differ from want's
// (freshet config's), matched by flag.
func rowsDrift(got, want []string) []string {
	index := func(rows []string) map[string]string {
		m := map[string]string{}
		for _, r := range rows {
			m[rowKey(r)] = r
		}
		return m
	}
	g, w := index(got), index(want)
	var out []string
	for _, r := range want {
		k := rowKey(r)
		switch gr, ok := g[k]; {
		case !ok:
			out = append(out, "  missing from the README: "+r)
		case gr != r:
			out = append(out, "  README:         "+gr+"\n  freshet config: "+r)
		}
	}
	for _, r := range got {
		if _, ok := w[rowKey(r)]; !ok {
			out = append(out, "  only in the README (no such setting): "+r)
		}
	}
	if len(out) == 0 && !slices.Equal(got, want) {
		out = append(out, "  the rows are in another order than freshet config's (sorted by flag)")
	}
	return out
}

// TestReadmeConfigurationIsFreshetConfig: the settings tables of the
// README's Configuration section are what `freshet config` prints, so the
// documented settings cannot drift from the accepted ones.
func TestReadmeConfigurationIsFreshetConfig(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "README.md"))
	require.NoError(t, err)
	diff, err := configDrift(string(readme))
	require.NoError(t, err)
	if diff != "" {
		t.Fatal(diff)
	}
}

// TestReadmeCheckFails: the check above fails, saying where, when a row
// of the README changes, goes, or is added, or a table goes.
func TestReadmeCheckFails(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "README.md"))
	require.NoError(t, err)
	batchSize := "| `--batch-size` | `FRESHET_BATCH_SIZE` | `50000` | most events applied to the store in one micro-batch |"
	require.Contains(t, string(readme), batchSize, "the row this test changes")
	for _, tc := range []struct {
		name   string
		change func(string) string
		want   []string
	}{
		{"a default", func(s string) string { return strings.Replace(s, "`50000`", "`5000`", 1) },
			[]string{"### featurize:", "README:         | `--batch-size` | `FRESHET_BATCH_SIZE` | `5000` |", "freshet config: " + batchSize}},
		{"a row gone", func(s string) string { return strings.Replace(s, batchSize+"\n", "", 1) },
			[]string{"### featurize:", "missing from the README: " + batchSize}},
		{"a row added", func(s string) string {
			return strings.Replace(s, batchSize, batchSize+"\n| `--kafka-write-timeout` | `FRESHET_KAFKA_WRITE_TIMEOUT` | `10s` | x |", 1)
		}, []string{"### featurize:", "only in the README (no such setting): | `--kafka-write-timeout`"}},
		{"a table gone", func(s string) string { return strings.Replace(s, "### serve\n", "### server\n", 1) },
			[]string{"### serve: no such table in the README", "### server: a table of the README that `freshet config` does not print"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed := tc.change(string(readme))
			require.NotEqual(t, string(readme), changed)
			diff, err := configDrift(changed)
			require.NoError(t, err)
			for _, w := range tc.want {
				require.Contains(t, diff, w)
			}
		})
	}
}
