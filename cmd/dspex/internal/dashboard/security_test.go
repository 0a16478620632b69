package dashboard_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dspex/dspex/cmd/dspex/internal/dashboard"
)

func TestNonLoopbackNeedsToken(t *testing.T) {
	db := filepath.Join(t.TempDir(), "traces.db")
	for _, addr := range []string{"0.0.0.0:0", ":8090", "192.0.2.1:8090", "[::]:0", "example.test:80"} {
		if _, err := dashboard.New(dashboard.Config{DB: db, Addr: addr}); !errors.Is(err, dashboard.ErrTokenRequired) {
			t.Errorf("New(%s) without a token: %v; want ErrTokenRequired", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0"} {
		if _, err := dashboard.New(dashboard.Config{DB: db, Addr: addr}); err != nil {
			t.Errorf("New(%s): %v", addr, err)
		}
	}
	if _, err := dashboard.New(dashboard.Config{DB: db, Addr: "0.0.0.0:0", Token: "s3cret"}); err != nil {
		t.Errorf("New(0.0.0.0:0) with a token: %v", err)
	}
	if _, err := dashboard.New(dashboard.Config{DB: db, Addr: "no-port"}); err == nil {
		t.Error("New accepted an address without a port")
	}
}

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestTokenCSPAndReadOnly(t *testing.T) {
	db := filepath.Join(t.TempDir(), "traces.db")
	d, err := dashboard.New(dashboard.Config{DB: db, Addr: "0.0.0.0:0", Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	h := d.Handler()
	for _, tc := range []struct {
		name   string
		target string
		hdr    map[string]string
		want   int
	}{
		{"no token", "/", nil, http.StatusUnauthorized},
		{"wrong token", "/?token=nope", nil, http.StatusUnauthorized},
		{"wrong bearer", "/", map[string]string{"Authorization": "Bearer nope"}, http.StatusUnauthorized},
		{"wrong cookie", "/", map[string]string{"Cookie": dashboard.TokenCookie + "=nope"}, http.StatusUnauthorized},
		{"bearer", "/", map[string]string{"Authorization": "Bearer s3cret"}, http.StatusOK},
		{"cookie", "/", map[string]string{"Cookie": dashboard.TokenCookie + "=s3cret"}, http.StatusOK},
		{"query sets the cookie", "/?token=s3cret", nil, http.StatusSeeOther},
		{"static needs it too", "/static/app.js", nil, http.StatusUnauthorized},
	} {
		rec := get(t, h, "GET", tc.target, tc.hdr)
		if rec.Code != tc.want {
			t.Errorf("%s: status %d; want %d", tc.name, rec.Code, tc.want)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", tc.name, csp)
		}
		if tc.want == http.StatusSeeOther {
			if loc := rec.Header().Get("Location"); strings.Contains(loc, "token") {
				t.Errorf("redirect keeps the token in the URL: %s", loc)
			}
			if c := rec.Header().Get("Set-Cookie"); !strings.Contains(c, "s3cret") || !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "SameSite=Strict") {
				t.Errorf("cookie %q", c)
			}
		}
	}
	auth := map[string]string{"Authorization": "Bearer s3cret"}
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		if rec := get(t, h, m, "/", auth); rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s: status %d; want 405", m, rec.Code)
		}
	}
	if rec := get(t, h, "GET", "/static/app.js", auth); rec.Code != 200 || !strings.Contains(rec.Body.String(), "EventSource") {
		t.Errorf("app.js: %d", rec.Code)
	}
}

// A loopback dashboard answers loopback host names only: a page of another
// site cannot reach it through a name that resolves to 127.0.0.1.
func TestLoopbackRefusesOtherHosts(t *testing.T) {
	d, err := dashboard.New(dashboard.Config{DB: filepath.Join(t.TempDir(), "traces.db"), Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	h := d.Handler()
	for host, want := range map[string]int{"127.0.0.1:8090": 200, "localhost:8090": 200, "[::1]:8090": 200, "evil.test:8090": 403, "evil.test": 403} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %s: status %d; want %d", host, rec.Code, want)
		}
		if rec.Header().Get("Content-Security-Policy") != dashboard.CSP {
			t.Errorf("Host %s: no CSP", host)
		}
	}
}
