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

// ListSites returns every site of corp, following pages of 100. It stops on an
// empty page, once totalCount sites were read, or (without totalCount) on a
// short page.
func (c *Client) ListSites(ctx context.Context, corp string) ([]Site, error) {
	path, err := corpPath(corp)
	if err != nil {
		return nil, err
	}
	path += "/sites"
	var sites []Site
	for page := 1; page <= maxSitePages; page++ {
		list, err := c.sitesPage(ctx, path, page)
		if err != nil {
			return nil, err
		}
		for _, s := range list.Data {
			sites = append(sites, Site{Name: s.Name, DisplayName: s.DisplayName, Created: s.Created.Time})
		}
		if lastSitesPage(list, len(sites)) {
			return sites, nil
		}
	}
	return nil, fmt.Errorf("sigsci: GET %s: still more pages after %d; giving up", path, maxSitePages)
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
