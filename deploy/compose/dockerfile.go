package compose

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Instruction is one instruction of a Dockerfile.
type Instruction struct {
	// Keyword is the instruction in upper case: FROM, RUN, COPY, ENV...
	Keyword string
	// Args is the rest of the instruction, its continuation lines joined
	// with spaces; comment lines among them dropped.
	Args string
	// Line is the line it starts on.
	Line int
}

// Stage is one build stage of a Dockerfile.
type Stage struct {
	// Image is the stage's base: an image reference, scratch or an
	// earlier stage's name.
	Image string
	// Name is the stage's name (FROM ... AS name), or "".
	Name string
	// Line is the line of its FROM.
	Line int
	// Instructions are those after its FROM.
	Instructions []Instruction
}

// ParseDockerfile reads a Dockerfile's stages: lines joined where they end
// with a backslash, comments and parser directives skipped. Global ARGs
// (before the first FROM) are skipped too; any other instruction there,
// and heredocs (<<EOF), are errors: they are not understood here.
func ParseDockerfile(path string) ([]Stage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dockerfile: %w", err)
	}
	defer f.Close()
	var stages []Stage
	sc := bufio.NewScanner(f)
	var line string
	start := 0
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue // blank lines end nothing, even within a continuation
		}
		if start == 0 {
			start = n
		}
		if rest, cont := strings.CutSuffix(text, "\\"); cont {
			line += rest + " "
			continue
		}
		line += text
		keyword, args, _ := strings.Cut(strings.TrimSpace(line), " ")
		keyword, args = strings.ToUpper(keyword), strings.TrimSpace(args)
		at := start
		line, start = "", 0
		if strings.Contains(args, "<<") && (keyword == "RUN" || keyword == "COPY" || keyword == "ADD") {
			return nil, fmt.Errorf("%s:%d: %s with a heredoc is not understood here", path, at, keyword)
		}
		if keyword == "FROM" {
			fields := strings.Fields(args)
			for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
				fields = fields[1:] // --platform=...
			}
			st := Stage{Line: at}
			switch {
			case len(fields) == 1:
				st.Image = fields[0]
			case len(fields) == 3 && strings.EqualFold(fields[1], "AS"):
				st.Image, st.Name = fields[0], fields[2]
			default:
				return nil, fmt.Errorf("%s:%d: FROM %s: want FROM image [AS name]", path, at, args)
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if keyword == "ARG" {
				continue
			}
			return nil, fmt.Errorf("%s:%d: %s before the first FROM", path, at, keyword)
		}
		last := &stages[len(stages)-1]
		last.Instructions = append(last.Instructions, Instruction{Keyword: keyword, Args: args, Line: at})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("%s: no FROM", path)
	}
	return stages, nil
}

// ImageEnv returns the variables the ENV instructions of a Dockerfile's
// last stage set, in the NAME=VALUE form (unquoted values; line
// continuations allowed). Another form is an error rather than a guess.
func ImageEnv(dockerfile string) (map[string]string, error) {
	stages, err := ParseDockerfile(dockerfile)
	if err != nil {
		return nil, fmt.Errorf("image environment: %w", err)
	}
	env := map[string]string{} // a stage starts with its base's environment: none of ours
	for _, in := range stages[len(stages)-1].Instructions {
		if in.Keyword != "ENV" {
			continue
		}
		for _, kv := range strings.Fields(in.Args) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" || strings.ContainsAny(v, `"'$`) {
				return nil, fmt.Errorf("%s:%d: ENV %q: only NAME=VALUE with a plain value is understood", dockerfile, in.Line, kv)
			}
			env[k] = v
		}
	}
	return env, nil
}
