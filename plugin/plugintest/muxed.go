// Package plugintest holds what tests need to call the engine the way Vault
// does over go-plugin: a plugin client whose every call carries a mount's
// multiplexing id, as Vault tags the calls of each mount of a multiplexed
// plugin. It is for tests only and holds nothing else.
package plugintest

import (
	"context"

	gplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/vault/sdk/helper/pluginutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// MuxedClient is a plugin client over conn whose calls carry the
// multiplexing id of one mount.
func MuxedClient(conn *gplugin.GRPCClient, id string) pluginutil.PluginClient {
	return muxedClient{GRPCClient: conn, id: id}
}

type muxedClient struct {
	*gplugin.GRPCClient
	id string
}

func (m muxedClient) Conn() grpc.ClientConnInterface {
	return idConn{ClientConn: m.GRPCClient.Conn, id: m.id}
}

func (m muxedClient) Reload() error { return nil }

// idConn adds the multiplexing id to every call on the connection.
type idConn struct {
	*grpc.ClientConn
	id string
}

func (c idConn) Invoke(ctx context.Context, method string, args, reply interface{}, opts ...grpc.CallOption) error {
	ctx = metadata.AppendToOutgoingContext(ctx, pluginutil.MultiplexingCtxKey, c.id)
	return c.ClientConn.Invoke(ctx, method, args, reply, opts...)
}

func (c idConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, pluginutil.MultiplexingCtxKey, c.id)
	return c.ClientConn.NewStream(ctx, desc, method, opts...)
}
