package compose

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// A small PromQL parser, enough for dashboards, so that the dashboard's
// checks see the structure of a query and not only the names in it:
// selectors with matchers, range brackets and subqueries, offset and @,
// function calls, aggregations with by/without before or after their
// arguments, binary operators with bool, on/ignoring and
// group_left/group_right, unary minus, parentheses, numbers, durations,
// strings and Grafana's $variables. It is not Prometheus's parser (that
// module is far too heavy for a test): what it does not know is an error,
// never a guess.

type pqNode interface{ pqNode() }

type (
	// pqLiteral is a number, a duration or a Grafana variable.
	pqLiteral struct{ Text string }
	pqString  struct{ Text string }
	// pqSelector is a series selector, name{matchers}, with Range set when
	// a range ([5m]) follows it.
	pqSelector struct {
		Name     string
		Matchers []string // label names, in order
		Range    bool
	}
	pqCall struct {
		Func string
		Args []pqNode
	}
	pqAgg struct {
		Op       string
		Without  bool
		Grouping []string // the by or without labels; nil when neither is given
		Param    pqNode   // topk's k, quantile's φ, count_values's label; else nil
		Expr     pqNode
	}
	pqBinary struct {
		Op       string
		LHS, RHS pqNode
		Matching []string // on/ignoring labels, then group_left/group_right ones
	}
	pqUnary    struct{ Expr pqNode }
	pqParen    struct{ Expr pqNode }
	pqSubquery struct{ Expr pqNode }
)

func (pqLiteral) pqNode()  {}
func (pqString) pqNode()   {}
func (pqSelector) pqNode() {}
func (pqCall) pqNode()     {}
func (pqAgg) pqNode()      {}
func (pqBinary) pqNode()   {}
func (pqUnary) pqNode()    {}
func (pqParen) pqNode()    {}
func (pqSubquery) pqNode() {}

var (
	pqAggregations = map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
		"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
		"limitk": true, "limit_ratio": true}
	pqAggParam = map[string]bool{"count_values": true, "bottomk": true, "topk": true, "quantile": true,
		"limitk": true, "limit_ratio": true}
	pqFunctions = setOf("abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
		"avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh", "count_over_time",
		"day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg", "delta", "deriv",
		"double_exponential_smoothing", "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
		"histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum", "holt_winters", "hour",
		"idelta", "increase", "info", "irate", "label_join", "label_replace", "last_over_time", "ln", "log10",
		"log2", "mad_over_time", "max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear",
		"present_over_time", "quantile_over_time", "rad", "rate", "resets", "round", "scalar", "sgn", "sin",
		"sinh", "sort", "sort_by_label", "sort_by_label_desc", "sort_desc", "sqrt", "stddev_over_time",
		"stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year")
	// pqPrecedence of the binary operators, loosest first; ^ is the only
	// right-associative one.
	pqPrecedence = map[string]int{"or": 1, "and": 2, "unless": 2, "==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3,
		">=": 3, "+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "atan2": 5, "^": 6}
	pqKeywords = setOf("by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
		"and", "or", "unless", "atan2")
	// A range or a subquery's range and step: 5m, 1h30m, $__rate_interval.
	pqRange = regexp.MustCompile(`^\s*(\$\{?\w+\}?|[0-9]+(\.[0-9]+)?[a-z]+([0-9]+[a-z]+)*)\s*(:\s*(\$\{?\w+\}?|[0-9]+[a-z]+([0-9]+[a-z]+)*)?\s*)?$`)
)

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

type pqTokenKind int

const (
	pqEOF pqTokenKind = iota
	pqIdent
	pqNumber // a number, a duration or a $variable
	pqStr
	pqRangeTok // [...], its text the inside
	pqPunct    // ( ) { } , and operators
)

type pqToken struct {
	kind pqTokenKind
	text string
	pos  int // rune offset, for messages
}

// checkBalanced reports the first parenthesis, bracket or brace that is
// not closed, or closed by the wrong kind, strings skipped.
func checkBalanced(expr string) error {
	s := []rune(expr)
	type open struct {
		r   rune
		pos int
	}
	var stack []open
	closer := map[rune]rune{')': '(', ']': '[', '}': '{'}
	for i := 0; i < len(s); i++ {
		switch r := s[i]; r {
		case '"', '\'', '`':
			j := i + 1
			for ; j < len(s) && s[j] != r; j++ {
				if s[j] == '\\' && r != '`' {
					j++
				}
			}
			if j >= len(s) {
				return fmt.Errorf("unterminated string from offset %d", i)
			}
			i = j
		case '(', '[', '{':
			stack = append(stack, open{r, i})
		case ')', ']', '}':
			if len(stack) == 0 {
				return fmt.Errorf("unbalanced: %q at offset %d closes nothing", r, i)
			}
			top := stack[len(stack)-1]
			if top.r != closer[r] {
				return fmt.Errorf("unbalanced: %q at offset %d closes %q of offset %d", r, i, top.r, top.pos)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		top := stack[len(stack)-1]
		return fmt.Errorf("unbalanced: %q at offset %d is never closed", top.r, top.pos)
	}
	return nil
}

func pqLex(expr string) ([]pqToken, error) {
	s := []rune(expr)
	var toks []pqToken
	isStart := func(r rune) bool { return r == '_' || r == ':' || unicode.IsLetter(r) }
	isPart := func(r rune) bool { return isStart(r) || unicode.IsDigit(r) }
	for i := 0; i < len(s); {
		r := s[i]
		start := i
		switch {
		case unicode.IsSpace(r):
			i++
			continue
		case r == '#':
			for i < len(s) && s[i] != '\n' {
				i++ // a comment
			}
			continue
		case r == '"' || r == '\'' || r == '`':
			j := i + 1
			for ; j < len(s) && s[j] != r; j++ {
				if s[j] == '\\' && r != '`' {
					j++
				}
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string from offset %d", i)
			}
			toks = append(toks, pqToken{pqStr, string(s[i+1 : j]), start})
			i = j + 1
		case r == '[':
			j := slices.Index(s[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unclosed [ at offset %d", i)
			}
			toks = append(toks, pqToken{pqRangeTok, string(s[i+1 : i+j]), start})
			i += j + 1
		case isStart(r):
			for i < len(s) && isPart(s[i]) {
				i++
			}
			toks = append(toks, pqToken{pqIdent, string(s[start:i]), start})
		case unicode.IsDigit(r) || r == '.' && i+1 < len(s) && unicode.IsDigit(s[i+1]):
			for i < len(s) && (isPart(s[i]) && s[i] != ':' || s[i] == '.' ||
				(s[i] == '+' || s[i] == '-') && (s[i-1] == 'e' || s[i-1] == 'E') && !strings.ContainsRune(string(s[start:i]), 'x')) {
				i++ // 0.99, 1e-3, 0x1f, 5m, 1h30m
			}
			toks = append(toks, pqToken{pqNumber, string(s[start:i]), start})
		case r == '$':
			i++
			if i < len(s) && s[i] == '{' {
				j := slices.Index(s[i:], '}')
				if j < 0 {
					return nil, fmt.Errorf("unclosed ${ at offset %d", start)
				}
				i += j + 1
			} else {
				for i < len(s) && isPart(s[i]) && s[i] != ':' {
					i++
				}
			}
			if i == start+1 {
				return nil, fmt.Errorf("a lone $ at offset %d", start)
			}
			toks = append(toks, pqToken{pqNumber, string(s[start:i]), start})
		default:
			op := string(r)
			if i+1 < len(s) {
				if two := string(s[i : i+2]); slices.Contains([]string{"==", "!=", ">=", "<=", "=~", "!~"}, two) {
					op = two
				}
			}
			if !strings.Contains("(){},+-*/%^=<>@!", op[:1]) || op == "!" {
				return nil, fmt.Errorf("unexpected %q at offset %d", r, i)
			}
			toks = append(toks, pqToken{pqPunct, op, start})
			i += len([]rune(op))
		}
	}
	return append(toks, pqToken{pqEOF, "", len(s)}), nil
}

type pqParser struct {
	toks []pqToken
	i    int
}

func (p *pqParser) peek() pqToken { return p.toks[p.i] }

func (p *pqParser) next() pqToken {
	t := p.toks[p.i]
	if t.kind != pqEOF {
		p.i++
	}
	return t
}

func (p *pqParser) is(kind pqTokenKind, text string) bool {
	t := p.peek()
	return t.kind == kind && t.text == text
}

func (p *pqParser) expect(text string) error {
	t := p.next()
	if t.kind != pqPunct || t.text != text {
		return fmt.Errorf("expected %q at offset %d, got %s", text, t.pos, describe(t))
	}
	return nil
}

func describe(t pqToken) string {
	switch t.kind {
	case pqEOF:
		return "the end"
	case pqStr:
		return fmt.Sprintf("string %q", t.text)
	case pqRangeTok:
		return fmt.Sprintf("[%s]", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

// parsePromQL parses a dashboard query.
func parsePromQL(expr string) (pqNode, error) {
	if err := checkBalanced(expr); err != nil {
		return nil, fmt.Errorf("%q: %w", expr, err)
	}
	toks, err := pqLex(expr)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", expr, err)
	}
	p := &pqParser{toks: toks}
	n, err := p.expr(0)
	if err == nil && p.peek().kind != pqEOF {
		err = fmt.Errorf("unexpected %s at offset %d after a complete expression", describe(p.peek()), p.peek().pos)
	}
	if err != nil {
		return nil, fmt.Errorf("%q: %w", expr, err)
	}
	return n, nil
}

func (p *pqParser) binaryOp() (string, bool) {
	t := p.peek()
	if (t.kind == pqPunct || t.kind == pqIdent) && pqPrecedence[t.text] > 0 {
		return t.text, true
	}
	return "", false
}

func (p *pqParser) expr(minPrec int) (pqNode, error) {
	lhs, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		op, ok := p.binaryOp()
		if !ok || pqPrecedence[op] < minPrec {
			return lhs, nil
		}
		p.next()
		b := &pqBinary{Op: op, LHS: lhs}
		if p.is(pqIdent, "bool") {
			p.next()
		}
		if p.is(pqIdent, "on") || p.is(pqIdent, "ignoring") {
			p.next()
			labels, err := p.labelList()
			if err != nil {
				return nil, err
			}
			b.Matching = append(b.Matching, labels...)
			if p.is(pqIdent, "group_left") || p.is(pqIdent, "group_right") {
				p.next()
				if p.is(pqPunct, "(") {
					labels, err := p.labelList()
					if err != nil {
						return nil, err
					}
					b.Matching = append(b.Matching, labels...)
				}
			}
		}
		next := pqPrecedence[op] + 1
		if op == "^" {
			next = pqPrecedence[op]
		}
		if b.RHS, err = p.expr(next); err != nil {
			return nil, err
		}
		lhs = b
	}
}

func (p *pqParser) unary() (pqNode, error) {
	if p.is(pqPunct, "-") || p.is(pqPunct, "+") {
		p.next()
		e, err := p.expr(pqPrecedence["^"])
		if err != nil {
			return nil, err
		}
		return &pqUnary{Expr: e}, nil
	}
	e, err := p.primary()
	if err != nil {
		return nil, err
	}
	return p.postfix(e)
}

// postfix reads what may follow an expression: a range or subquery,
// offset and @.
func (p *pqParser) postfix(e pqNode) (pqNode, error) {
	for {
		t := p.peek()
		switch {
		case t.kind == pqRangeTok:
			p.next()
			if !pqRange.MatchString(t.text) {
				return nil, fmt.Errorf("[%s] at offset %d is not a range (5m, $__rate_interval) or a subquery (5m:1m)", t.text, t.pos)
			}
			if strings.Contains(t.text, ":") {
				e = &pqSubquery{Expr: e}
				continue
			}
			sel, ok := e.(*pqSelector)
			if !ok || sel.Range {
				return nil, fmt.Errorf("range [%s] at offset %d follows no series selector (a subquery needs a step: [5m:1m])", t.text, t.pos)
			}
			sel.Range = true
		case t.kind == pqIdent && t.text == "offset":
			p.next()
			if p.is(pqPunct, "-") {
				p.next()
			}
			if d := p.next(); d.kind != pqNumber {
				return nil, fmt.Errorf("offset at offset %d takes a duration, got %s", t.pos, describe(d))
			}
		case t.kind == pqPunct && t.text == "@":
			p.next()
			switch d := p.next(); {
			case d.kind == pqNumber:
			case d.kind == pqIdent && (d.text == "start" || d.text == "end"):
				if err := p.expect("("); err != nil {
					return nil, err
				}
				if err := p.expect(")"); err != nil {
					return nil, err
				}
			default:
				return nil, fmt.Errorf("@ at offset %d takes a time, start() or end(), got %s", t.pos, describe(d))
			}
		default:
			return e, nil
		}
	}
}

func (p *pqParser) primary() (pqNode, error) {
	t := p.next()
	switch t.kind {
	case pqNumber:
		return &pqLiteral{Text: t.text}, nil
	case pqStr:
		return &pqString{Text: t.text}, nil
	case pqPunct:
		switch t.text {
		case "(":
			e, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			if err := p.expect(")"); err != nil {
				return nil, err
			}
			return &pqParen{Expr: e}, nil
		case "{":
			p.i--
			sel := &pqSelector{}
			return sel, p.matchers(sel)
		}
	case pqIdent:
		name := t.text
		switch lower := strings.ToLower(name); {
		case lower == "inf" || lower == "nan":
			return &pqLiteral{Text: name}, nil
		case pqAggregations[name]:
			return p.aggregation(name)
		case p.is(pqPunct, "("):
			if !pqFunctions[name] {
				return nil, fmt.Errorf("%s at offset %d is not a PromQL function", name, t.pos)
			}
			p.next()
			call := &pqCall{Func: name}
			for !p.is(pqPunct, ")") {
				if len(call.Args) > 0 {
					if err := p.expect(","); err != nil {
						return nil, err
					}
				}
				a, err := p.expr(0)
				if err != nil {
					return nil, err
				}
				call.Args = append(call.Args, a)
			}
			p.next()
			return call, nil
		case pqKeywords[name]:
			return nil, fmt.Errorf("keyword %s at offset %d where an expression should be", name, t.pos)
		default:
			sel := &pqSelector{Name: name}
			if p.is(pqPunct, "{") {
				return sel, p.matchers(sel)
			}
			return sel, nil
		}
	}
	return nil, fmt.Errorf("unexpected %s at offset %d where an expression should be", describe(t), t.pos)
}

func (p *pqParser) aggregation(op string) (pqNode, error) {
	a := &pqAgg{Op: op}
	grouping := func() error {
		if !p.is(pqIdent, "by") && !p.is(pqIdent, "without") {
			return nil
		}
		if a.Grouping != nil {
			return fmt.Errorf("%s at offset %d: a second by or without", op, p.peek().pos)
		}
		a.Without = p.next().text == "without"
		labels, err := p.labelList()
		a.Grouping = append([]string{}, labels...)
		return err
	}
	if err := grouping(); err != nil {
		return nil, err
	}
	if err := p.expect("("); err != nil {
		return nil, err
	}
	if pqAggParam[op] {
		param, err := p.expr(0)
		if err != nil {
			return nil, err
		}
		a.Param = param
		if err := p.expect(","); err != nil {
			return nil, fmt.Errorf("%s takes a parameter and an expression: %w", op, err)
		}
	}
	e, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	a.Expr = e
	if err := p.expect(")"); err != nil {
		return nil, err
	}
	return a, grouping()
}

// labelList reads ( label, ... ).
func (p *pqParser) labelList() ([]string, error) {
	if err := p.expect("("); err != nil {
		return nil, fmt.Errorf("a label list: %w", err)
	}
	var labels []string
	for !p.is(pqPunct, ")") {
		if len(labels) > 0 {
			if err := p.expect(","); err != nil {
				return nil, err
			}
			if p.is(pqPunct, ")") {
				break
			}
		}
		t := p.next()
		if t.kind != pqIdent || strings.Contains(t.text, ":") {
			return nil, fmt.Errorf("expected a label name at offset %d, got %s", t.pos, describe(t))
		}
		labels = append(labels, t.text)
	}
	p.next()
	return labels, nil
}

// matchers reads {label op "value", ...} into sel.
func (p *pqParser) matchers(sel *pqSelector) error {
	if err := p.expect("{"); err != nil {
		return err
	}
	first := true
	for !p.is(pqPunct, "}") {
		if !first {
			if err := p.expect(","); err != nil {
				return err
			}
			if p.is(pqPunct, "}") {
				break
			}
		}
		first = false
		l := p.next()
		if l.kind != pqIdent || strings.Contains(l.text, ":") {
			return fmt.Errorf("expected a label name in a selector at offset %d, got %s", l.pos, describe(l))
		}
		op := p.next()
		if op.kind != pqPunct || !slices.Contains([]string{"=", "!=", "=~", "!~"}, op.text) {
			return fmt.Errorf("matcher of %s at offset %d: expected =, !=, =~ or !~, got %s", l.text, op.pos, describe(op))
		}
		if v := p.next(); v.kind != pqStr {
			return fmt.Errorf("matcher of %s at offset %d has no string value", l.text, v.pos)
		}
		sel.Matchers = append(sel.Matchers, l.text)
	}
	p.next()
	if sel.Name == "" && len(sel.Matchers) == 0 {
		return fmt.Errorf("an empty selector {}")
	}
	return nil
}

// pqWalk calls f on n and every node under it, depth first, in the order
// the query is written.
func pqWalk(n pqNode, f func(pqNode)) {
	f(n)
	switch n := n.(type) {
	case *pqCall:
		for _, a := range n.Args {
			pqWalk(a, f)
		}
	case *pqAgg:
		if n.Param != nil {
			pqWalk(n.Param, f)
		}
		pqWalk(n.Expr, f)
	case *pqBinary:
		pqWalk(n.LHS, f)
		pqWalk(n.RHS, f)
	case *pqUnary:
		pqWalk(n.Expr, f)
	case *pqParen:
		pqWalk(n.Expr, f)
	case *pqSubquery:
		pqWalk(n.Expr, f)
	}
}

// unparen strips parentheses around an expression.
func unparen(n pqNode) pqNode {
	for {
		p, ok := n.(*pqParen)
		if !ok {
			return n
		}
		n = p.Expr
	}
}

// promqlRefs returns the metric names and label names a PromQL expression
// uses, in the order written: selectors' names and matchers, and the
// labels of by/without, on/ignoring and group_left/group_right.
func promqlRefs(expr string) (metrics, labels []string, err error) {
	n, err := parsePromQL(expr)
	if err != nil {
		return nil, nil, err
	}
	var walk func(pqNode)
	walk = func(n pqNode) {
		switch n := n.(type) {
		case *pqSelector:
			if n.Name != "" {
				metrics = append(metrics, n.Name)
			}
			labels = append(labels, n.Matchers...)
		case *pqCall:
			for _, a := range n.Args {
				walk(a)
			}
		case *pqAgg:
			labels = append(labels, n.Grouping...)
			if n.Param != nil {
				walk(n.Param)
			}
			walk(n.Expr)
		case *pqBinary:
			walk(n.LHS)
			labels = append(labels, n.Matching...)
			walk(n.RHS)
		case *pqUnary:
			walk(n.Expr)
		case *pqParen:
			walk(n.Expr)
		case *pqSubquery:
			walk(n.Expr)
		}
	}
	walk(n)
	return metrics, labels, nil
}

// counterFuncs are the functions of a counter's increase over a range.
var counterFuncs = setOf("rate", "increase", "irate")

// counterSuffixes are the names a counter's or a histogram's series end
// with, by the Prometheus and OpenTelemetry naming conventions the
// services follow.
var counterSuffixes = []string{"_total", "_bucket", "_count", "_sum"}

// promqlShape returns what is wrong in a query's structure, whatever the
// metrics' types: rate, increase and irate over anything but a range of
// one named series whose name a counter or a histogram's series has; a
// histogram_quantile that is not over sum by (le, ...) of the rate or
// increase of a _bucket series.
func promqlShape(n pqNode) []string {
	var problems []string
	pqWalk(n, func(n pqNode) {
		call, ok := n.(*pqCall)
		if !ok {
			return
		}
		switch {
		case counterFuncs[call.Func]:
			if len(call.Args) != 1 {
				problems = append(problems, fmt.Sprintf("%s takes one argument, got %d", call.Func, len(call.Args)))
				return
			}
			sel, ok := unparen(call.Args[0]).(*pqSelector)
			if !ok || !sel.Range {
				problems = append(problems, fmt.Sprintf("%s takes a range of a series, name[range]", call.Func))
				return
			}
			if !slices.ContainsFunc(counterSuffixes, func(s string) bool { return strings.HasSuffix(sel.Name, s) }) {
				problems = append(problems, fmt.Sprintf("%s(%s[...]): rate, increase and irate are for counters and histograms, whose series end in %s",
					call.Func, sel.Name, strings.Join(counterSuffixes, ", ")))
			}
		case call.Func == "histogram_quantile":
			if len(call.Args) != 2 {
				problems = append(problems, fmt.Sprintf("histogram_quantile takes φ and the buckets, got %d arguments", len(call.Args)))
				return
			}
			const want = "histogram_quantile(φ, sum by (le, ...) (rate(name_bucket[range])))"
			agg, ok := unparen(call.Args[1]).(*pqAgg)
			if !ok || agg.Op != "sum" {
				problems = append(problems, "histogram_quantile over no sum of the buckets: want "+want)
				return
			}
			if agg.Without || !slices.Contains(agg.Grouping, "le") {
				problems = append(problems, fmt.Sprintf("histogram_quantile over sum %s (%s): the buckets' le must be kept, by (le, ...)",
					map[bool]string{true: "without", false: "by"}[agg.Without], strings.Join(agg.Grouping, ", ")))
			}
			inner, ok := unparen(agg.Expr).(*pqCall)
			if !ok || !counterFuncs[inner.Func] {
				problems = append(problems, "histogram_quantile over the sum of no rate or increase: want "+want)
				return
			}
			if len(inner.Args) == 1 {
				if sel, ok := unparen(inner.Args[0]).(*pqSelector); !ok || !strings.HasSuffix(sel.Name, "_bucket") {
					problems = append(problems, "histogram_quantile over no _bucket series: want "+want)
				}
			}
		}
	})
	return problems
}

// promqlTypes returns where a query uses a metric against its type, as the
// services' own `# TYPE` lines give it (kind): rate, increase and irate
// only over counters and the series of histograms and summaries; anything
// else (gauges) as it is, in aggregations or other functions. A counter or
// a histogram's series outside rate or increase is a problem too: its raw
// value only grows, and falls to zero when the service restarts.
func promqlTypes(n pqNode, kind func(string) string) []string {
	var problems []string
	var walk func(n pqNode, inRate string)
	walk = func(n pqNode, inRate string) {
		switch n := n.(type) {
		case *pqSelector:
			k := kind(n.Name)
			if k == "" {
				return // unknown: reported as not a metric of the services
			}
			counting := k == "counter" || strings.HasPrefix(k, "histogram_") || strings.HasPrefix(k, "summary_")
			switch {
			case inRate != "" && !counting:
				problems = append(problems, fmt.Sprintf("%s(%s[...]): %s is a %s; rate, increase and irate are for counters and histograms (use a gauge as it is, or deriv/delta)",
					inRate, n.Name, n.Name, k))
			case inRate == "" && counting:
				problems = append(problems, fmt.Sprintf("%s (a %s) outside rate or increase: its raw value only grows, and resets when a service restarts",
					n.Name, strings.ReplaceAll(k, "_", " ")))
			}
		case *pqCall:
			in := ""
			if counterFuncs[n.Func] {
				in = n.Func
			}
			for _, a := range n.Args {
				walk(a, in)
			}
		case *pqAgg:
			if n.Param != nil {
				walk(n.Param, "")
			}
			walk(n.Expr, "")
		case *pqBinary:
			walk(n.LHS, "")
			walk(n.RHS, "")
		case *pqUnary:
			walk(n.Expr, "")
		case *pqParen:
			walk(n.Expr, inRate)
		case *pqSubquery:
			walk(n.Expr, "")
		}
	}
	walk(n, "")
	return problems
}
