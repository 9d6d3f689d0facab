package auth

// file.go owns the tokens file's format and the set of tokens it holds.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Token is one line of the tokens file: who holds a token and what it
// may do. The token itself is known only by its SHA-256.
type Token struct {
	// Name identifies the holder in logs and metrics ("prometheus"); it
	// is no secret. Two lines may share a name (a token and its
	// replacement, while clients move over).
	Name string
	// Scopes is what the token may do.
	Scopes Scopes
	// Rate is how many events a second the token may send to ingest,
	// on average (the line's optional rate=N); 0 for no limit.
	Rate float64
	// digest is the SHA-256 of the token.
	digest [sha256.Size]byte
}

// Set is the tokens of one reading of the file. It is immutable, so a
// reload swaps a new one in whole.
type Set struct {
	tokens []Token
}

// Len is the number of tokens.
func (s *Set) Len() int { return len(s.tokens) }

// Names returns the name of every token holding scope, in file order,
// each once.
func (s *Set) Names(scope Scope) []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range s.tokens {
		if t.Scopes.Has(scope) && !seen[t.Name] {
			seen[t.Name] = true
			out = append(out, t.Name)
		}
	}
	return out
}

// Lookup returns the token whose SHA-256 is that of token, or nil. It
// compares the digest with every token's in constant time, and always
// with all of them, so its duration says nothing of how close a guess
// came.
func (s *Set) Lookup(token string) *Token {
	d := sha256.Sum256([]byte(token))
	var found *Token
	for i := range s.tokens {
		if subtle.ConstantTimeCompare(d[:], s.tokens[i].digest[:]) == 1 {
			found = &s.tokens[i]
		}
	}
	return found
}

// namePattern is a token's name: it is a log field and a metric label
// value, so a short word of safe characters.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CheckName reports why name cannot name a token, or nil.
func CheckName(name string) error {
	if !namePattern.MatchString(name) {
		return errors.New("a token's name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	return nil
}

// hashPrefix starts the third field of a line.
const hashPrefix = "sha256:"

// Parse reads the content of a tokens file; name is the file's, for the
// errors. The format, one token a line:
//
//	# a comment, from # to the end of the line; blank lines are ignored
//	prometheus metrics sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//	shop-api   ingest,serve sha256:...
//	partner    ingest sha256:... rate=500
//
// NAME (CheckName), SCOPES (ParseScopes: ingest, serve, metrics, admin,
// comma-separated) and sha256: with the 64 hex digits of the token's
// SHA-256, then optionally rate= and the events a second the token may
// send to ingest (Guard.Spend), separated by spaces or tabs. A token may
// appear once. A file without tokens is valid: every protected route then
// answers 401.
func Parse(name string, content []byte) (*Set, error) {
	set := &Set{}
	var errs []error
	firstLine := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(bytes.NewReader(content))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		t, err := parseLine(fields)
		if err == nil {
			if prev, dup := firstLine[t.digest]; dup {
				err = fmt.Errorf("the same token as line %d: a token may appear once", prev)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", name, n, err))
			continue
		}
		firstLine[t.digest] = n
		set.tokens = append(set.tokens, t)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return set, nil
}

// parseLine reads the fields of one line.
func parseLine(fields []string) (Token, error) {
	if len(fields) != 3 && len(fields) != 4 {
		msg := fmt.Sprintf("want NAME SCOPES sha256:HEX [rate=EVENTS_PER_SECOND], got %d field(s)", len(fields))
		if len(fields) == 1 && len(fields[0]) >= 40 && !strings.HasPrefix(fields[0], hashPrefix) {
			msg += ": if this is a token itself, remove it: the file holds only a token's SHA-256 (freshet token new prints the line to add)"
		}
		return Token{}, errors.New(msg)
	}
	if err := CheckName(fields[0]); err != nil {
		return Token{}, err
	}
	scopes, err := ParseScopes(fields[1])
	if err != nil {
		return Token{}, err
	}
	t := Token{Name: fields[0], Scopes: scopes}
	hexDigits, ok := strings.CutPrefix(strings.ToLower(fields[2]), hashPrefix)
	if !ok {
		return Token{}, errors.New("the third field must be sha256: and the token's SHA-256 in hex (freshet token new prints the line)")
	}
	if len(hexDigits) != 2*sha256.Size {
		return Token{}, fmt.Errorf("sha256: wants %d hex digits, got %d", 2*sha256.Size, len(hexDigits))
	}
	if _, err := hex.Decode(t.digest[:], []byte(hexDigits)); err != nil {
		return Token{}, errors.New("sha256: wants hex digits (0-9, a-f) only")
	}
	if len(fields) == 4 {
		rate, err := parseRate(fields[3])
		if err != nil {
			return Token{}, err
		}
		if !scopes.Has(Ingest) {
			return Token{}, fmt.Errorf("rate= limits the events a token sends to ingest, and this token lacks the %q scope", Ingest.String())
		}
		t.Rate = rate
	}
	return t, nil
}

// parseRate reads the fourth field, rate=EVENTS_PER_SECOND.
func parseRate(field string) (float64, error) {
	v, ok := strings.CutPrefix(field, "rate=")
	if !ok {
		return 0, fmt.Errorf("the fourth field must be rate= and the events a second the token may send, got %q", field)
	}
	rate, err := strconv.ParseFloat(v, 64)
	if err != nil || !(rate > 0) || math.IsInf(rate, 0) {
		return 0, fmt.Errorf("rate=%s: want a positive number of events a second, like rate=500", v)
	}
	return rate, nil
}

// Line is the line of the tokens file for token, named name with scopes.
func Line(name string, scopes Scopes, token string) string {
	d := sha256.Sum256([]byte(token))
	return name + " " + scopes.String() + " " + hashPrefix + hex.EncodeToString(d[:])
}
