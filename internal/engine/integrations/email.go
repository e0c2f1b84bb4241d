package integrations

import (
	"context"
	"crypto/tls"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/smtp"
	"strconv"
	"strings"
	"time"
)

// htmlIndicators are the markers Julep's email.send looks for to send the
// body as HTML.
var htmlIndicators = []string{"<html", "<body", "<div", "<p>", "<br", "<table", "<h1", "<h2", "<h3", "<h4", "<h5", "<h6", "<span", "<a href="}

// emailSend is Julep's email.send over SMTP: setup host, port, user,
// password; arguments to, from, subject, body. Like Julep it uses STARTTLS
// (only a loopback server, a local test fake, may go without it). The
// connection is dialled through the HTTP client's dialer, so the egress
// policy applies. The answer is {success: true}.
func emailSend(ctx context.Context, c *client, setup, args map[string]any) (any, error) {
	host, err := need(setup, "setup", "host")
	if err != nil {
		return nil, err
	}
	port := num(setup, "port", 587)
	user := str(setup, "user", "")
	pass := str(setup, "password", "")
	to, err := need(args, "arguments", "to")
	if err != nil {
		return nil, err
	}
	from, err := need(args, "arguments", "from")
	if err != nil {
		return nil, err
	}
	subject, body := str(args, "subject", ""), str(args, "body", "")
	for _, s := range []string{to, from, subject} {
		if strings.ContainsAny(s, "\r\n") {
			return nil, fmt.Errorf("to, from and subject must be one line")
		}
	}
	dial := (&net.Dialer{Timeout: 30 * time.Second}).DialContext
	if t, ok := c.hc.Transport.(*http.Transport); ok && t.DialContext != nil {
		dial = t.DialContext
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(2 * time.Minute))
	}
	sc, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return nil, err
	}
	defer sc.Close()
	loopback := false
	if ra, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		loopback = ra.IP.IsLoopback()
	}
	if ok, _ := sc.Extension("STARTTLS"); ok {
		if err := sc.StartTLS(&tls.Config{ServerName: host}); err != nil {
			return nil, err
		}
	} else if !loopback {
		return nil, fmt.Errorf("the SMTP server %s does not offer STARTTLS", addr)
	}
	if user != "" {
		if err := sc.Auth(smtp.PlainAuth("", user, pass, host)); err != nil {
			return nil, err
		}
	}
	if err := sc.Mail(from); err != nil {
		return nil, err
	}
	for _, rcpt := range strings.Split(to, ",") {
		if err := sc.Rcpt(strings.TrimSpace(rcpt)); err != nil {
			return nil, err
		}
	}
	w, err := sc.Data()
	if err != nil {
		return nil, err
	}
	ctype := "text/plain"
	low := strings.ToLower(body)
	for _, h := range htmlIndicators {
		if strings.Contains(low, h) {
			ctype = "text/html"
			break
		}
	}
	msg := "Subject: " + mime.QEncoding.Encode("utf-8", subject) + "\r\nFrom: " + from + "\r\nTo: " + to +
		"\r\nMIME-Version: 1.0\r\nContent-Type: " + ctype + "; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
		strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n")
	if _, err := w.Write([]byte(msg)); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	_ = sc.Quit()
	return map[string]any{"success": true}, nil
}
