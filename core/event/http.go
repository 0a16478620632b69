package event

import "time"

// HTTPRequest is a request a DSPEx HTTP server (dspex serve) answered. It is
// published once, after the response was written, with *HTTPRequestInfo,
// placed in the request's own span: the module and LM spans of the request
// are that span's children.
const HTTPRequest Kind = "http.request"

// HTTPRequestInfo is one answered HTTP request.
type HTTPRequestInfo struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	// Status is the HTTP status sent; 499 when the client went away
	// before an answer.
	Status int `json:"status"`
	// Duration is how long the request took, from the handler's start to
	// the end of the response, queue wait included.
	Duration time.Duration `json:"duration"`
	// QueueWait is how long the request waited for a slot.
	QueueWait time.Duration `json:"queue_wait,omitempty"`
	// Remote is the client's address.
	Remote string `json:"remote,omitempty"`
	// Error and ErrorType say why a request failed (ErrorType is the
	// "type" of the JSON error body, such as "invalid_request").
	Error     string `json:"error,omitempty"`
	ErrorType string `json:"error_type,omitempty"`
	// Stack is the goroutine stack of a panic the server contained,
	// truncated.
	Stack string `json:"stack,omitempty"`
}
