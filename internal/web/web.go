// Package web serves Astra's browser dashboard: plain HTML, CSS and
// JavaScript embedded in the binary, so there is no Node build step and the
// page always matches the server it came from.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// CSP allows only this origin's scripts and styles; images and audio may
// come from https (Google avatars, TTS files); the socket is same-origin.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data: https:; media-src 'self' https: blob: data:; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type handler struct {
	index   asset
	assets  map[string]asset // by URL path, e.g. "/app.js"
	version string           // content hash of every asset; index.html links ?v=<version>
}

// Handler serves the dashboard: "/" (index.html, never cached, so a deploy
// is seen at once) and its assets (cached for a year when requested with the
// current ?v= content hash, revalidated otherwise).
func Handler() http.Handler {
	h, err := newHandler(static)
	if err != nil {
		panic("web: embedded dashboard is broken: " + err.Error()) // a build-time defect, not input
	}
	return h
}

func newHandler(fsys fs.FS) (*handler, error) {
	h := &handler{assets: map[string]asset{}}
	all := sha256.New()
	var index []byte
	err := fs.WalkDir(fsys, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		all.Write([]byte(p))
		all.Write(b)
		name := strings.TrimPrefix(p, "static")
		if name == "/index.html" {
			index = b
			return nil
		}
		h.assets[name] = newAsset(name, b)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if index == nil {
		return nil, fs.ErrNotExist
	}
	h.version = hex.EncodeToString(all.Sum(nil))[:16]
	h.index = newAsset("/index.html", bytes.ReplaceAll(index, []byte("__VERSION__"), []byte(h.version)))
	return h, nil
}

func newAsset(name string, b []byte) asset {
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = http.DetectContentType(b)
	}
	sum := sha256.Sum256(b)
	return asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "same-origin")
	var a asset
	switch p := r.URL.Path; p {
	case "/", "/index.html":
		a = h.index
		hdr.Set("Cache-Control", "no-cache")
		hdr.Set("Content-Security-Policy", contentSecurityPolicy)
		hdr.Set("X-Frame-Options", "DENY")
	default:
		var ok bool
		if a, ok = h.assets[p]; !ok {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("v") == h.version {
			// The URL names this exact content, so it never changes.
			hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			hdr.Set("Cache-Control", "no-cache")
		}
	}
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("ETag", a.etag)
	// ServeContent answers If-None-Match with 304 and handles HEAD and ranges.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
