using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace SaliencyService.Api.Configuration;

/// <summary>
/// Kestrel's socket transport, accepting a connection only while fewer than a number of them are
/// open (every endpoint together, HTTP's and gRPC's), as nginx stops accepting at its
/// worker_connections. The rest wait in the kernel's listen backlog, holding none of the process's
/// file descriptors. Kestrel's own MaxConcurrentConnections accepts a connection past its cap and
/// then closes it, so a flood still holds a descriptor for each connection being closed: 900
/// connections at once ran a service with ~300 of its own open out of its 1,024 (bench/analysis.md,
/// sixty-seventh pass).
/// </summary>
public sealed class ConnectionSlots : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    private readonly SocketTransportFactory _sockets;
    private readonly SemaphoreSlim _free;

    public ConnectionSlots(SocketTransportFactory sockets, long slots)
    {
        _sockets = sockets;
        Slots = (int)Math.Clamp(slots, 1, int.MaxValue);
        _free = new SemaphoreSlim(Slots);
    }

    /// <summary>The connections it keeps open at most.</summary>
    public int Slots { get; }

    public bool CanBind(EndPoint endpoint) => _sockets.CanBind(endpoint);

    public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default) =>
        new Listener(await _sockets.BindAsync(endpoint, cancellationToken), _free);

    private sealed class Listener(IConnectionListener inner, SemaphoreSlim free) : IConnectionListener
    {
        // Kestrel's accept loop passes no token: unbinding must end a wait for a slot.
        private readonly CancellationTokenSource _unbound = new();

        public EndPoint EndPoint => inner.EndPoint;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            using var either = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _unbound.Token);
            try
            {
                await free.WaitAsync(either.Token);
            }
            catch (OperationCanceledException) when (_unbound.IsCancellationRequested)
            {
                return null; // unbound: as the socket listener answers then
            }
            ConnectionContext? connection = null;
            try
            {
                connection = await inner.AcceptAsync(cancellationToken);
            }
            finally
            {
                if (connection is null) free.Release(); // unbound or failed: the slot was not taken
            }
            return connection is null ? null : new Held(connection, free);
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            _unbound.Cancel();
            return inner.UnbindAsync(cancellationToken);
        }

        public async ValueTask DisposeAsync()
        {
            _unbound.Cancel();
            await inner.DisposeAsync();
            _unbound.Dispose();
        }
    }

    /// <summary>An accepted connection that gives its slot back once disposed (its socket closed).</summary>
    private sealed class Held(ConnectionContext inner, SemaphoreSlim free) : ConnectionContext
    {
        private int _released;

        public override string ConnectionId { get => inner.ConnectionId; set => inner.ConnectionId = value; }
        public override IFeatureCollection Features => inner.Features;
        public override IDictionary<object, object?> Items { get => inner.Items; set => inner.Items = value; }
        public override System.IO.Pipelines.IDuplexPipe Transport { get => inner.Transport; set => inner.Transport = value; }
        public override CancellationToken ConnectionClosed { get => inner.ConnectionClosed; set => inner.ConnectionClosed = value; }
        public override EndPoint? LocalEndPoint { get => inner.LocalEndPoint; set => inner.LocalEndPoint = value; }
        public override EndPoint? RemoteEndPoint { get => inner.RemoteEndPoint; set => inner.RemoteEndPoint = value; }
        public override void Abort(ConnectionAbortedException abortReason) => inner.Abort(abortReason);
        public override void Abort() => inner.Abort();

        public override async ValueTask DisposeAsync()
        {
            try
            {
                await inner.DisposeAsync();
            }
            finally
            {
                if (Interlocked.Exchange(ref _released, 1) == 0) free.Release();
            }
        }
    }
}
