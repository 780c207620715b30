package main

import (
	"testing"
)

func TestParseKeysAcceptsEverySpellingTheAgentMeets(t *testing.T) {
	cases := map[string]string{
		"real agent, quoted":      "accesskeyid = \"AK\"\nsecretaccesskey = \"SK\"\n",
		"documented, bare":        "\naccesskeyid=AK\nsecretkey=SK\n\n",
		"single quotes, comments": "# rendered by hostd\naccesskeyid = 'AK'\nsecretaccesskey='SK'\n",
		"other settings around":   "listener = \"127.0.0.1:8000\"\naccesskeyid=AK\nsecretaccesskey=SK\n",
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			keys, err := parseKeys([]byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if keys.AccessKeyID != "AK" || keys.SecretAccessKey != "SK" {
				t.Fatalf("got %q/%q, want AK/SK", keys.AccessKeyID, keys.SecretAccessKey)
			}
		})
	}
}

func TestParseKeysRefusesIncompleteConfig(t *testing.T) {
	cases := map[string]string{
		"empty":          "",
		"no secret":      "accesskeyid = \"AK\"\n",
		"empty access":   "accesskeyid = \"\"\nsecretaccesskey = \"SK\"\n",
		"not name=value": "accesskeyid AK\n",
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := parseKeys([]byte(src)); err == nil {
				t.Fatal("accepted an incomplete configuration")
			}
		})
	}
}
