package auth

import (
	"html/template"
	"net/http"
)

// pageTmpl is the small page a failed Google sign-in shows: readable on its
// own, with a way back in.
var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · Astra</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f6f5fb;color:#1d1b26;display:grid;place-items:center;min-height:100vh}
main{max-width:28rem;margin:1rem;padding:2rem;background:#fff;border-radius:12px;box-shadow:0 2px 12px #0002}
h1{font-size:1.35rem;margin:0 0 .75rem}
a{display:inline-block;margin:1rem 1rem 0 0;color:#4b2bb3;font-weight:600}
a:focus-visible{outline:3px solid #4b2bb3;outline-offset:3px}
</style>
</head>
<body>
<main role="alert">
<h1>{{.Title}}</h1>
<p>{{.Detail}}</p>
<a href="{{.Retry}}" data-testid="try-again">Try again</a><a href="/">Back to Astra</a>
</main>
</body>
</html>
`))

func (g *Google) page(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, struct{ Title, Detail, Retry string }{title, detail, g.opt.StartPath})
}
