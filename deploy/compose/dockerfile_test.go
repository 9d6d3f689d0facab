package compose

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/freshet-ml/freshet/pipeline/testenv"
)

// dockerfile is the repository's Dockerfile, parsed.
func dockerfile(t testing.TB) []Stage {
	t.Helper()
	stages, err := ParseDockerfile(filepath.Join(testenv.RepoRoot(t), "Dockerfile"))
	require.NoError(t, err)
	return stages
}

// shellCommands splits a RUN instruction's shell form into its simple
// commands (at &&, ||, ;, | and &), each as its words: quotes removed,
// backslash escapes applied. Expansions ($VAR, $(...)) are left as they
// are written; nothing here needs them.
func shellCommands(s string) ([][]string, error) {
	var cmds [][]string
	var cmd []string
	var word strings.Builder
	inWord := false
	endWord := func() {
		if inWord {
			cmd = append(cmd, word.String())
			word.Reset()
			inWord = false
		}
	}
	endCmd := func() {
		endWord()
		if len(cmd) > 0 {
			cmds = append(cmds, cmd)
			cmd = nil
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			endWord()
		case c == '&' || c == '|' || c == ';':
			endCmd()
			if i+1 < len(s) && (s[i+1] == '&' || s[i+1] == '|') {
				i++
			}
		case c == '\\':
			if i+1 < len(s) {
				i++
				word.WriteByte(s[i])
			}
			inWord = true
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			word.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) && strings.IndexByte("\"\\$`", s[j+1]) >= 0 {
					j++
				}
				word.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			i = j
			inWord = true
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	endCmd()
	return cmds, nil
}

// goBuild is a `go build` of a RUN instruction.
type goBuild struct {
	Stage int
	Line  int
	Out   string   // -o
	Pkgs  []string // the packages, as written
}

// Binaries are the paths of the executables the build writes, in its
// stage's file system.
func (b goBuild) Binaries() map[string]string {
	out := map[string]string{}
	for _, p := range b.Pkgs {
		name := path.Base(p)
		if strings.HasSuffix(b.Out, "/") {
			out[name] = b.Out + name
		} else {
			out[name] = b.Out
		}
	}
	return out
}

var (
	goBuildValueFlags = setOf("o", "ldflags", "gcflags", "asmflags", "tags", "mod", "modfile", "overlay", "pgo",
		"pkgdir", "p", "buildmode", "compiler", "gccgoflags", "installsuffix", "toolexec", "C", "covermode", "coverpkg")
	goBuildBoolFlags = setOf("trimpath", "race", "msan", "asan", "v", "x", "a", "n", "work", "cover", "linkshared",
		"modcacherw", "buildvcs", "json")
	envAssignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)
)

// goBuilds returns every `go build` the Dockerfile runs. A flag it does
// not know, or a package pattern with ..., is an error rather than a
// guess at what gets built.
func goBuilds(stages []Stage) ([]goBuild, error) {
	var builds []goBuild
	for si, st := range stages {
		for _, in := range st.Instructions {
			if in.Keyword != "RUN" {
				continue
			}
			if strings.HasPrefix(in.Args, "[") {
				return nil, fmt.Errorf("Dockerfile:%d: RUN in exec form is not understood here", in.Line)
			}
			cmds, err := shellCommands(in.Args)
			if err != nil {
				return nil, fmt.Errorf("Dockerfile:%d: %w", in.Line, err)
			}
			for _, words := range cmds {
				for len(words) > 0 && envAssignment.MatchString(words[0]) {
					words = words[1:]
				}
				if len(words) < 2 || words[0] != "go" || words[1] != "build" {
					continue
				}
				b := goBuild{Stage: si, Line: in.Line}
				for i := 2; i < len(words); i++ {
					w := words[i]
					if !strings.HasPrefix(w, "-") {
						if strings.Contains(w, "...") {
							return nil, fmt.Errorf("Dockerfile:%d: go build %s: name the programs, not a pattern", in.Line, w)
						}
						b.Pkgs = append(b.Pkgs, w)
						continue
					}
					name, value, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
					switch {
					case goBuildValueFlags[name]:
						if !hasValue {
							i++
							if i >= len(words) {
								return nil, fmt.Errorf("Dockerfile:%d: go build -%s without its value", in.Line, name)
							}
							value = words[i]
						}
						if name == "o" {
							b.Out = value
						}
					case goBuildBoolFlags[name]:
					default:
						return nil, fmt.Errorf("Dockerfile:%d: go build flag %s is not understood here", in.Line, w)
					}
				}
				if len(b.Pkgs) == 0 || b.Out == "" {
					return nil, fmt.Errorf("Dockerfile:%d: go build names no package or no -o", in.Line)
				}
				if len(b.Pkgs) > 1 && !strings.HasSuffix(b.Out, "/") {
					return nil, fmt.Errorf("Dockerfile:%d: go build of several packages writes to a directory: -o %s/", in.Line, b.Out)
				}
				builds = append(builds, b)
			}
		}
	}
	return builds, nil
}

// copyInstr is a COPY instruction.
type copyInstr struct {
	From    string // --from, "" for the build context
	Sources []string
	Dest    string
	Line    int
}

func copies(st Stage) ([]copyInstr, error) {
	var out []copyInstr
	for _, in := range st.Instructions {
		if in.Keyword == "ADD" {
			return nil, fmt.Errorf("Dockerfile:%d: ADD is not understood here (use COPY)", in.Line)
		}
		if in.Keyword != "COPY" {
			continue
		}
		if strings.HasPrefix(in.Args, "[") {
			return nil, fmt.Errorf("Dockerfile:%d: COPY in JSON form is not understood here", in.Line)
		}
		c := copyInstr{Line: in.Line}
		var words []string
		for _, w := range strings.Fields(in.Args) {
			if from, ok := strings.CutPrefix(w, "--from="); ok {
				c.From = from
			} else if !strings.HasPrefix(w, "--") {
				words = append(words, w)
			}
		}
		if len(words) < 2 {
			return nil, fmt.Errorf("Dockerfile:%d: COPY wants sources and a destination", in.Line)
		}
		c.Sources, c.Dest = words[:len(words)-1], words[len(words)-1]
		out = append(out, c)
	}
	return out, nil
}

// stageIndex returns the index of the stage a --from names.
func stageIndex(stages []Stage, from string) int {
	for i, st := range stages {
		if st.Name == from || strconv.Itoa(i) == from {
			return i
		}
	}
	return -1
}

// imagePath returns where a COPY from stage from puts the file at src of
// that stage, or "" when it does not copy it. A directory source copies
// its contents.
func imagePath(c copyInstr, stages []Stage, from int, file string) string {
	if c.From == "" || stageIndex(stages, c.From) != from {
		return ""
	}
	for _, src := range c.Sources {
		switch {
		case src == file && !strings.HasSuffix(c.Dest, "/"):
			return c.Dest
		case src == file:
			return c.Dest + path.Base(file)
		case strings.HasPrefix(file, strings.TrimSuffix(src, "/")+"/"):
			return path.Join(c.Dest, strings.TrimPrefix(file, strings.TrimSuffix(src, "/")+"/"))
		}
	}
	return ""
}

// TestImageBuildsEveryProgram: the image holds every program the stack
// runs, on its PATH: each freshet service's command and healthcheck
// executable, the image's default command, and freshet (whose healthcheck
// subcommand every healthcheck runs) are built by a `go build` of the
// Dockerfile from a main package of the repository, and copied to a
// directory of the last stage's PATH.
func TestImageBuildsEveryProgram(t *testing.T) {
	root := testenv.RepoRoot(t)
	stages := dockerfile(t)
	final := stages[len(stages)-1]
	env, err := ImageEnv(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	pathDirs := strings.Split(env["PATH"], ":")

	// Where each binary lands in the image.
	builds, err := goBuilds(stages)
	require.NoError(t, err)
	require.NotEmpty(t, builds, "the Dockerfile runs no go build")
	finalCopies, err := copies(final)
	require.NoError(t, err)
	inImage := map[string]string{} // binary → its path in the image
	for _, b := range builds {
		require.Less(t, b.Stage, len(stages)-1, "Dockerfile:%d: go build in the last stage (scratch has no Go)", b.Line)
		for _, pkg := range b.Pkgs {
			require.True(t, strings.HasPrefix(pkg, "./"), "Dockerfile:%d: %s: a package of this repository, ./...", b.Line, pkg)
			require.Equal(t, "main", packageName(t, filepath.Join(root, filepath.FromSlash(pkg))),
				"Dockerfile:%d: %s is no program", b.Line, pkg)
		}
		for name, file := range b.Binaries() {
			for _, c := range finalCopies {
				if p := imagePath(c, stages, b.Stage, file); p != "" {
					inImage[name] = p
				}
			}
		}
	}

	// What the stack runs.
	need := map[string]string{"freshet": "every freshet healthcheck runs `freshet healthcheck`"}
	for _, in := range final.Instructions {
		switch in.Keyword {
		case "ENTRYPOINT":
			require.Equal(t, "[]", strings.ReplaceAll(in.Args, " ", ""),
				"Dockerfile:%d: a service's command is a program of the image, not arguments to an ENTRYPOINT", in.Line)
		case "CMD":
			var cmd []string
			require.NoError(t, json.Unmarshal([]byte(in.Args), &cmd), "Dockerfile:%d: CMD in exec form", in.Line)
			require.NotEmpty(t, cmd)
			need[cmd[0]] = "the image's default command"
		}
	}
	p := stack(t, true)
	for name, s := range freshetServices(p) {
		prog, err := ProgramOf(s.Command)
		require.NoError(t, err, "service %s", name)
		need[prog.Binary] = "service " + name + " runs " + prog.Name
		if hc := s.HealthCheck; hc != nil && len(hc.Test) > 1 && hc.Test[0] == "CMD" {
			need[hc.Test[1]] = "service " + name + "'s healthcheck"
		}
	}
	require.Contains(t, need, "ingest")
	require.Contains(t, need, "featurize")
	require.Contains(t, need, "serve")
	for bin, why := range need {
		at, ok := inImage[bin]
		require.True(t, ok, "%s is not built and copied into the image (%s)", bin, why)
		require.Contains(t, pathDirs, path.Dir(at), "%s is at %s, not on the image's PATH %s (%s)", bin, at, env["PATH"], why)
	}
}

// packageName is the package clause of the Go files in dir.
func packageName(t testing.TB, dir string) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		if m := regexp.MustCompile(`(?m)^package (\w+)`).FindSubmatch(b); m != nil {
			return string(m[1])
		}
	}
	return ""
}

func TestGoBuildsParse(t *testing.T) {
	st := []Stage{{Image: "golang:1.26.8", Instructions: []Instruction{{Keyword: "RUN",
		Args: `mkdir /x && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -tags 'a b' -o /out/ ./cmd/a ./cmd/b; go build -o=/one ./cmd/c`}}}}
	builds, err := goBuilds(st)
	require.NoError(t, err)
	require.Len(t, builds, 2)
	require.Equal(t, map[string]string{"a": "/out/a", "b": "/out/b"}, builds[0].Binaries())
	require.Equal(t, map[string]string{"c": "/one"}, builds[1].Binaries())
	for _, bad := range []string{`go build -o /out ./cmd/a ./cmd/b`, `go build -o /out/ ./cmd/...`, `go build -frobnicate -o /o ./a`, `go build ./cmd/a`} {
		_, err := goBuilds([]Stage{{Instructions: []Instruction{{Keyword: "RUN", Args: bad}}}})
		require.Error(t, err, bad)
	}
}

// TestImageRuntimeFiles: the scratch image has what the programs need
// beyond themselves: the CA certificates (Go reads
// /etc/ssl/certs/ca-certificates.crt; without it rediss:// and https OTLP
// endpoints fail with x509 errors), a /tmp that its non-root user can
// write (os.CreateTemp, featurize backfill's run files), and that user.
func TestImageRuntimeFiles(t *testing.T) {
	stages := dockerfile(t)
	final := stages[len(stages)-1]
	require.Equal(t, "scratch", final.Image, "the image is built on scratch; these checks are for what scratch lacks")
	cs, err := copies(final)
	require.NoError(t, err)

	const certs = "/etc/ssl/certs/ca-certificates.crt"
	require.True(t, slices.ContainsFunc(cs, func(c copyInstr) bool {
		from := stageIndex(stages, c.From)
		return from >= 0 && imagePath(c, stages, from, certs) == certs
	}), "the image has no %s: copy it from the builder", certs)

	// /tmp: a COPY that puts a directory of a build stage there, made
	// sticky and writable by everyone in that stage.
	tmpOK := false
	for _, c := range cs {
		from := stageIndex(stages, c.From)
		if from < 0 {
			continue
		}
		for _, src := range c.Sources {
			var dir string
			switch {
			case path.Clean(c.Dest) == "/tmp":
				dir = path.Clean(src)
			case path.Clean(c.Dest) == "/" && strings.HasSuffix(src, "/"):
				dir = path.Join(src, "tmp")
			default:
				continue
			}
			if worldWritable(t, stages[from], dir) {
				tmpOK = true
			}
		}
	}
	require.True(t, tmpOK, "the image has no /tmp its user can write: scratch has none; copy an empty directory made with mode 1777 from the builder")

	var user string
	for _, in := range final.Instructions {
		if in.Keyword == "USER" {
			user = in.Args
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	require.NotContains(t, []string{"", "0", "root"}, uid, "the image runs as root")
}

// worldWritable reports whether a RUN of the stage makes dir with mode
// 1777: mkdir [-p] dir, then chmod 1777 dir (or mkdir -m 1777 dir).
func worldWritable(t testing.TB, st Stage, dir string) bool {
	made, moded := false, false
	for _, in := range st.Instructions {
		if in.Keyword != "RUN" {
			continue
		}
		cmds, err := shellCommands(in.Args)
		require.NoError(t, err)
		for _, w := range cmds {
			if !slices.ContainsFunc(w[1:], func(a string) bool { return path.Clean(a) == dir }) {
				continue
			}
			switch w[0] {
			case "mkdir":
				made = true
				if i := slices.Index(w, "-m"); i >= 0 && i+1 < len(w) && w[i+1] == "1777" || slices.Contains(w, "--mode=1777") {
					moded = true
				}
			case "chmod":
				moded = moded || w[1] == "1777"
			}
		}
	}
	return made && moded
}

// dockerignore reads the subset of .dockerignore's syntax
// (moby/patternmatcher) the repository's file uses: one pattern a line,
// # comments, ! exceptions, *, ? and ** (any number of directories),
// paths relative to the context's root. A path is left out when the last
// pattern that matches it or one of its parent directories is not an
// exception. A pattern with [ or \ is an error, not a guess.
type dockerignore []struct {
	re      *regexp.Regexp
	exclude bool
}

func readDockerignore(t testing.TB, file string) dockerignore {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	var d dockerignore
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		exclude := true
		if rest, ok := strings.CutPrefix(p, "!"); ok {
			p, exclude = strings.TrimSpace(rest), false
		}
		require.False(t, strings.ContainsAny(p, `[\`), ".dockerignore: %q is not understood by this test", p)
		p = strings.TrimPrefix(path.Clean(p), "/")
		require.NotEqual(t, ".", p, ".dockerignore: a pattern that leaves out everything")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case p[i] == '*':
				re.WriteString("[^/]*")
			case p[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		re.WriteString("$")
		d = append(d, struct {
			re      *regexp.Regexp
			exclude bool
		}{regexp.MustCompile(re.String()), exclude})
	}
	require.NoError(t, sc.Err())
	return d
}

// ignored reports whether the file at rel (slash-separated, relative to
// the context's root) is left out of the build context.
func (d dockerignore) ignored(rel string) bool {
	rel = path.Clean(rel)
	out := false
	for _, r := range d {
		for p := rel; p != "." && p != "/"; p = path.Dir(p) {
			if r.re.MatchString(p) {
				out = r.exclude
				break
			}
		}
	}
	return out
}

func TestDockerignoreMatching(t *testing.T) {
	f := filepath.Join(t.TempDir(), ".dockerignore")
	require.NoError(t, os.WriteFile(f, []byte("# c\nbin/\n**/*.test\n/tmp\n*.md\n!README.md\ndocs/**/x\n"), 0o644))
	d := readDockerignore(t, f)
	for rel, want := range map[string]bool{
		"bin": true, "bin/ingest": true, "cmd/bin/x": false, "a.test": true, "pipeline/store/store.test": true,
		"tmp/a/b": true, "x/tmp": false, "NOTES.md": true, "README.md": false, "docs/a.md": false,
		"docs/x": true, "docs/a/b/x": true, "go.mod": false,
	} {
		require.Equal(t, want, d.ignored(rel), rel)
	}
}

// TestDockerignore: the build context leaves out what is not source, and
// nothing the Dockerfile copies from it: each COPY source, every file
// under it, and for the whole context (COPY . .) every file the go build
// compiles or embeds.
func TestDockerignore(t *testing.T) {
	root := testenv.RepoRoot(t)
	d := readDockerignore(t, filepath.Join(root, ".dockerignore"))
	for _, rel := range []string{".git/HEAD", "bin/ingest", "bench/results/2026-01-01.json", "pipeline/store/store.test",
		"cpu.prof", "bench/cpu.prof", "tmp/x", "scripts/__pycache__/reference.cpython-312.pyc"} {
		require.True(t, d.ignored(rel), "%s is in the build context", rel)
	}

	stages := dockerfile(t)
	builds, err := goBuilds(stages)
	require.NoError(t, err)
	checked := 0
	for _, st := range stages {
		cs, err := copies(st)
		require.NoError(t, err)
		for _, c := range cs {
			if c.From != "" {
				continue
			}
			for _, src := range c.Sources {
				src = path.Clean(src)
				if src == "." {
					for _, rel := range goInputs(t, root, builds) {
						require.False(t, d.ignored(rel), "Dockerfile:%d: COPY . builds from %s, which .dockerignore leaves out", c.Line, rel)
						checked++
					}
					continue
				}
				require.False(t, d.ignored(src), "Dockerfile:%d: COPY %s, which .dockerignore leaves out", c.Line, src)
				require.NoError(t, filepath.Walk(filepath.Join(root, filepath.FromSlash(src)), func(p string, _ os.FileInfo, err error) error {
					if err != nil {
						return err
					}
					rel, err := filepath.Rel(root, p)
					require.NoError(t, err)
					require.False(t, d.ignored(filepath.ToSlash(rel)), "Dockerfile:%d: COPY %s: .dockerignore leaves out %s", c.Line, src, rel)
					checked++
					return nil
				}))
			}
		}
	}
	require.Greater(t, checked, 10, "the check saw next to no file")
}

// goInputs lists the files of this module the Dockerfile's go builds read
// (Go files, assembly and embedded files of every package they compile,
// with go.mod and go.sum), relative to the repository's root, as `go list`
// says for a static build.
func goInputs(t testing.TB, root string, builds []goBuild) []string {
	t.Helper()
	var pkgs []string
	for _, b := range builds {
		pkgs = append(pkgs, b.Pkgs...)
	}
	cmd := exec.Command("go", append([]string{"list", "-deps", "-f",
		`{{if and .Module .Module.Main}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .SFiles}} {{.}}{{end}}{{range .EmbedFiles}} {{.}}{{end}}{{end}}`},
		pkgs...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	require.NoError(t, err, "go list %s", strings.Join(pkgs, " "))
	files := []string{"go.mod", "go.sum"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		dir, err := filepath.Rel(root, fields[0])
		require.NoError(t, err)
		for _, f := range fields[1:] {
			files = append(files, filepath.ToSlash(filepath.Join(dir, f)))
		}
	}
	return files
}
