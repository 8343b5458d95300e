package admin

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/robotlab/webhookd/admin/client"
)

// apiError builds an API error answer.
func apiError(status int, code, format string, args ...any) *client.Error {
	return &client.Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) *client.Error {
	return apiError(http.StatusBadRequest, client.CodeInvalid, format, args...)
}

func notFound(what, id string) *client.Error {
	return apiError(http.StatusNotFound, client.CodeNotFound, "%s %q not found", what, id)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, e *client.Error) {
	writeJSON(w, e.Status, map[string]*client.Error{"error": e})
}
