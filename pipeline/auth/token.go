package auth

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// TokenBytes is how many random bytes a new token holds: 256 bits, out
// of reach of any guessing.
const TokenBytes = 32

// New returns a fresh random token (TokenBytes from crypto/rand, in
// unpadded base64url: 43 characters, safe in a header, a URL and a shell)
// for name with scopes, and the line of the tokens file that admits it.
// The token is not kept anywhere: the caller shows it once.
func New(name string, scopes Scopes) (token, line string, err error) {
	if err := CheckName(name); err != nil {
		return "", "", err
	}
	if scopes == 0 {
		return "", "", fmt.Errorf("no scope: a token needs at least one")
	}
	b := make([]byte, TokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("read random bytes: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, Line(name, scopes, token), nil
}
