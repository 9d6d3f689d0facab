package serve

import (
	"fmt"
	"strings"

	"github.com/freshet-ml/freshet/pipeline/config"
)

// Refusals of an unknown name (view, feature, request member) list the
// valid names, sorted, and suggest the closest one when a typo is likely:
//
//	unknown view "user_spendd"; views: merchant_activity, user_spend; did you mean "user_spend"?

// maxListed bounds the names a refusal lists, so a view of hundreds of
// features does not answer with a page of text.
const maxListed = 50

// nameList writes sorted names comma-separated, at most maxListed of them.
func nameList(sorted []string) string {
	if len(sorted) == 0 {
		return "(none)"
	}
	if len(sorted) <= maxListed {
		return strings.Join(sorted, ", ")
	}
	return strings.Join(sorted[:maxListed], ", ") + fmt.Sprintf(", … (%d more)", len(sorted)-maxListed)
}

// unknownName is the refusal of name, unknown as what (e.g. `view
// "user_spendd"`): the valid names under label, and the closest of them
// when it is a likely typo.
func unknownName(what, name, label string, sorted []string) string {
	msg := fmt.Sprintf("unknown %s; %s: %s", what, label, nameList(sorted))
	if s := config.Suggest(name, sorted); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return msg
}
