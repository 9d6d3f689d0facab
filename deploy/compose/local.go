package compose

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/freshet-ml/freshet/pipeline/config"
)

// Local says how to run a stack's freshet services as local processes with
// the command and environment the stack gives them, changing only what
// cannot be the same outside containers: where the binaries are, where the
// bind mounts point, the addresses of the servers standing in for the
// stack's Kafka and Redis, and the HTTP ports (every container has its own
// network; local processes share one).
type Local struct {
	// Bin is the directory of the freshet binaries: the image's PATH.
	Bin string
	// Addrs maps addresses of the stack's other services ("kafka:9092")
	// to the local servers standing in for them ("127.0.0.1:9092").
	Addrs map[string]string
	// Env holds settings given to every instance whose program accepts
	// them, over the stack's: for what a test must change, such as
	// FRESHET_TOPIC_PREFIX to keep its runs apart on a shared broker.
	Env map[string]string
	// Port returns a free local port for an instance's HTTP address.
	Port func() (int, error)
}

// Instance is one process of a service: a service with N replicas has N.
type Instance struct {
	// Name is the service's name, with _N for the Nth of several
	// replicas; dashes become underscores, so it is a shell identifier.
	Name    string
	Service string
	// Env is the whole environment, NAME=VALUE, sorted by name.
	Env []string
	// Command is the service's command.
	Command []string
	// Health is the service's healthcheck command (its CMD form).
	Health []string
	// URL is the base URL of the instance's HTTP address; "" when the
	// program has none.
	URL string
	// Changes says what differs from the stack's command and
	// environment, one line each, for the log.
	Changes []string
}

// Instances returns the processes of the named freshet services of p, in
// the order given, replicas included.
func (l Local) Instances(p *types.Project, services []string) ([]Instance, error) {
	if l.Port == nil {
		return nil, errors.New("compose: Local.Port is required")
	}
	type planned struct {
		svc  types.ServiceConfig
		env  map[string]string
		prog *Program
		port string
	}
	var plan []planned
	refs := map[string]string{} // "ingest:8081" → local address, for the services run here
	for _, name := range services {
		s, err := p.GetService(name)
		if err != nil {
			return nil, err
		}
		if !IsFreshet(s) {
			return nil, fmt.Errorf("service %s does not run a freshet program", name)
		}
		env, err := ServiceEnv(s)
		if err != nil {
			return nil, err
		}
		prog, err := ProgramOf(s.Command)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", name, err)
		}
		if err := prog.Parse(env); err != nil {
			return nil, fmt.Errorf("service %s: %w", name, err)
		}
		port, err := prog.HTTPPort()
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", name, err)
		}
		plan = append(plan, planned{s, env, prog, port})
	}

	var out []Instance
	for _, pl := range plan {
		n := pl.svc.GetScale()
		for i := 1; i <= n; i++ {
			inst := Instance{Name: strings.ReplaceAll(pl.svc.Name, "-", "_"), Service: pl.svc.Name}
			if n > 1 {
				inst.Name += "_" + strconv.Itoa(i)
			}
			if pl.port != "" {
				port, err := l.Port()
				if err != nil {
					return nil, fmt.Errorf("a port for %s: %w", inst.Name, err)
				}
				local := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
				inst.URL = "http://" + local
				if n == 1 {
					refs[pl.svc.Name+":"+pl.port] = local
				}
			}
			out = append(out, inst)
		}
	}

	// Rewrite each instance: its environment, command and healthcheck.
	k := 0
	for _, pl := range plan {
		for i := 1; i <= pl.svc.GetScale(); i++ {
			inst := &out[k]
			k++
			if err := l.rewrite(inst, pl.svc, pl.env, pl.prog, pl.port, refs, p); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// rewrite fills inst's environment, command and healthcheck from the
// service's, changed as Local says.
func (l Local) rewrite(inst *Instance, s types.ServiceConfig, base map[string]string, prog *Program, port string, refs map[string]string, p *types.Project) error {
	env := make(map[string]string, len(base))
	for k, v := range base {
		env[k] = v
	}
	local := strings.TrimPrefix(inst.URL, "http://")
	change := func(format string, a ...any) { inst.Changes = append(inst.Changes, fmt.Sprintf(format, a...)) }

	// Every address of another service, and every bind-mounted path.
	addrs := map[string]string{}
	for a, to := range l.Addrs {
		addrs[a] = to
	}
	for a, to := range refs {
		addrs[a] = to
	}
	mounts := map[string]string{}
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind {
			mounts[v.Target] = v.Source
		}
	}
	fix := func(v string) string {
		for _, a := range sortedKeys(addrs) {
			v = replaceAddr(v, a, addrs[a])
		}
		for _, t := range sortedKeys(mounts) {
			if v == t || strings.HasPrefix(v, t+"/") {
				v = mounts[t] + v[len(t):]
			}
		}
		return v
	}
	for _, k := range sortedKeys(env) {
		if v := fix(env[k]); v != env[k] {
			change("%s=%s → %s", k, env[k], v)
			env[k] = v
		}
	}
	if old, ok := env["PATH"]; !ok || old != l.Bin {
		change("PATH=%s → %s (the freshet binaries)", old, l.Bin)
		env["PATH"] = l.Bin
	}
	if local != "" {
		name := config.EnvName("http-addr")
		old, had := env[name]
		env[name] = local
		if had {
			change("%s=%s → %s (port %s of the container, here)", name, old, local, port)
		} else {
			change("%s=%s added (the default's port %s, here)", name, local, port)
		}
	}
	for _, k := range sortedKeys(l.Env) {
		if !prog.Accepts(k) {
			continue
		}
		old, had := env[k]
		if had && old == l.Env[k] {
			continue
		}
		env[k] = l.Env[k]
		if had {
			change("%s=%s → %s", k, old, l.Env[k])
		} else {
			change("%s=%s added", k, l.Env[k])
		}
	}

	for _, w := range s.Command {
		nw := fix(w)
		if nw != w {
			change("argument %s → %s", w, nw)
		}
		inst.Command = append(inst.Command, nw)
	}
	if hc := s.HealthCheck; hc != nil && !hc.Disable && len(hc.Test) > 0 && hc.Test[0] != "NONE" {
		if hc.Test[0] != "CMD" {
			return fmt.Errorf("service %s: healthcheck %q: only the CMD form can run outside its container", s.Name, []string(hc.Test))
		}
		for _, w := range hc.Test[1:] {
			nw := w
			if port != "" {
				for _, self := range []string{"localhost:" + port, "127.0.0.1:" + port} {
					nw = replaceAddr(nw, self, local)
				}
			}
			inst.Health = append(inst.Health, fix(nw))
		}
	}

	// Whatever still names a service of the stack cannot be reached here.
	var left []string
	check := func(what, v string) {
		for _, name := range p.ServiceNames() {
			if m := serviceAddr(name).FindString(v); m != "" {
				left = append(left, fmt.Sprintf("%s %q names %s", what, v, strings.TrimLeft(m, "/@,=")))
			}
		}
	}
	for _, k := range sortedKeys(env) {
		check(k, env[k])
	}
	for _, w := range append(append([]string(nil), inst.Command...), inst.Health...) {
		check("argument", w)
	}
	if len(left) > 0 {
		return fmt.Errorf("%s: %s: map these addresses to local servers", inst.Name, strings.Join(left, "; "))
	}

	// The rewritten settings must still be ones the program accepts.
	again, err := ProgramOf(s.Command)
	if err != nil {
		return err
	}
	again.Args = inst.Command[len(s.Command)-len(prog.Args):]
	if err := again.Parse(env); err != nil {
		return fmt.Errorf("%s after rewriting: %w", inst.Name, err)
	}
	for _, k := range sortedKeys(env) {
		inst.Env = append(inst.Env, k+"="+env[k])
	}
	sort.Strings(inst.Changes)
	return nil
}

// replaceAddr replaces old, a host:port, with repl wherever it stands as a
// whole address in s: not preceded by a character of a host name, not
// followed by a digit.
func replaceAddr(s, old, repl string) string {
	if old == "" {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], old)
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		j += i
		end := j + len(old)
		before := j == 0 || !hostChar(s[j-1])
		after := end == len(s) || s[end] < '0' || s[end] > '9'
		b.WriteString(s[i:j])
		if before && after {
			b.WriteString(repl)
		} else {
			b.WriteString(old)
		}
		i = end
	}
	return b.String()
}

func hostChar(c byte) bool {
	return c == '.' || c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// serviceAddr matches name as the host of an address or URL: name:port,
// at the start or after a separator.
func serviceAddr(name string) *regexp.Regexp {
	return regexp.MustCompile(`(^|[/@,=])` + regexp.QuoteMeta(name) + `:[0-9]+`)
}
