package integrations

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// cloudinaryUpload is Julep's cloudinary.media_upload over Cloudinary's
// upload API (POST /v1_1/<cloud>/image/upload, a signed form). Setup:
// cloudinary_api_key, cloudinary_api_secret, cloudinary_cloud_name;
// arguments: file (a URL or data URI), public_id (default a new UUID),
// upload_params. The answer is {url, public_id, meta_data, base64: null};
// return_base64 is refused.
func cloudinaryUpload(ctx context.Context, c *client, setup, args map[string]any) (any, error) {
	key, err := need(setup, "setup", "cloudinary_api_key")
	if err != nil {
		return nil, err
	}
	secret, err := need(setup, "setup", "cloudinary_api_secret")
	if err != nil {
		return nil, err
	}
	cloud, err := need(setup, "setup", "cloudinary_cloud_name")
	if err != nil {
		return nil, err
	}
	file, err := need(args, "arguments", "file")
	if err != nil {
		return nil, err
	}
	if b, _ := args["return_base64"].(bool); b {
		return nil, fmt.Errorf("return_base64 is not supported by the embedded engine")
	}
	params := map[string]string{}
	if up, ok := args["upload_params"].(map[string]any); ok {
		for k, v := range up {
			params[k] = fmt.Sprint(v)
		}
	}
	params["public_id"] = str(args, "public_id", uuid.NewString())
	params["timestamp"] = strconv.FormatInt(time.Now().Unix(), 10)
	params["signature"] = cloudinarySignature(params, secret)
	form := url.Values{"file": {file}, "api_key": {key}}
	for k, v := range params {
		form.Set(k, v)
	}
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+"/v1_1/"+url.PathEscape(cloud)+"/image/upload", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("Cloudinary error occurred: %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var result map[string]any
	if err := json.Unmarshal(b, &result); err != nil {
		return nil, fmt.Errorf("malformed answer: %v", err)
	}
	meta := map[string]any{}
	for k, v := range result {
		if k != "secure_url" && k != "public_id" {
			meta[k] = v
		}
	}
	return map[string]any{"url": result["secure_url"], "public_id": result["public_id"], "meta_data": meta, "base64": nil}, nil
}

// cloudinarySignature is Cloudinary's request signature: SHA-1 of the
// parameters (but file, api_key, resource_type, cloud_name) sorted as
// k=v joined by "&", followed by the API secret.
func cloudinarySignature(params map[string]string, secret string) string {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		switch k {
		case "file", "api_key", "resource_type", "cloud_name", "signature":
			continue
		}
		if v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + params[k]
	}
	sum := sha1.Sum([]byte(strings.Join(parts, "&") + secret))
	return hex.EncodeToString(sum[:])
}
