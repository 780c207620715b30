package sigsci

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/internal/wire"
)

const (
	// sitesPageSize is the largest page the API serves.
	sitesPageSize = 100
	// maxSitePages stops a misbehaving server from paging forever.
	maxSitePages = 1000
)

// ListSites returns every site of corp, following pages of 100, each name
// once. It stops on an empty page, once totalCount sites were read, (without
// totalCount) on a short page, or on a page that adds no site not already
// listed: an API that ignores "page" answers the first page again, and is
// reported in the log, with how many of totalCount sites it let be listed.
func (c *Client) ListSites(ctx context.Context, corp string) ([]Site, error) {
	path, err := corpPath(corp)
	if err != nil {
		return nil, err
	}
	path += "/sites"
	var sites []Site
	seen := map[string]bool{}
	for page := 1; page <= maxSitePages; page++ {
		list, err := c.sitesPage(ctx, path, page)
		if err != nil {
			return nil, err
		}
		added := 0
		for _, s := range list.Data {
			if seen[s.Name] {
				continue
			}
			seen[s.Name] = true
			added++
			sites = append(sites, Site{Name: s.Name, DisplayName: s.DisplayName, Created: s.Created.Time})
		}
		if added == 0 && len(list.Data) > 0 {
			c.warnPageRepeated(path, page, len(sites), list.TotalCount)
			return sites, nil
		}
		if lastSitesPage(list, len(sites)) {
			return sites, nil
		}
	}
	return nil, fmt.Errorf("sigsci: GET %s: still more pages after %d; giving up", path, maxSitePages)
}

// warnPageRepeated logs a sites page that listed only sites already seen.
func (c *Client) warnPageRepeated(path string, page, listed int, total *int) {
	args := []interface{}{"path", path, "page", page, "listed", listed}
	if total != nil {
		args = append(args, "total_count", *total)
	}
	c.logger.Warn("the API ignores page in the sites list: a page listed only sites already seen; stopping there", args...)
}

func (c *Client) sitesPage(ctx context.Context, path string, page int) (wire.SiteList, error) {
	query := url.Values{"page": {strconv.Itoa(page)}, "limit": {strconv.Itoa(sitesPageSize)}}
	_, body, err := c.do(ctx, http.MethodGet, path, query)
	if err != nil {
		return wire.SiteList{}, err
	}
	var list wire.SiteList
	if err := json.Unmarshal(body, &list); err != nil {
		return wire.SiteList{}, fmt.Errorf("sigsci: GET %s page %d: unexpected answer: %w", path, page, err)
	}
	return list, nil
}

func lastSitesPage(list wire.SiteList, seen int) bool {
	switch {
	case len(list.Data) == 0:
		return true
	case list.TotalCount != nil:
		return seen >= *list.TotalCount
	default:
		return len(list.Data) < sitesPageSize
	}
}
