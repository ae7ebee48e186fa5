/** The client's own error: the daemon refused a request, or what came back was no reply it could use. */
export class SandcellRemoteError extends Error {
  override readonly name = 'SandcellRemoteError';
  constructor(
    /** The reply's HTTP status; 0 when there was none (a WebSocket frame, a reply cut short before its status). */
    readonly status: number,
    /**
     * The daemon's error code (`unauthorized`, `forbidden`, `queue-full`, `draining`, `not-found`, ...),
     * or the client's own about the reply itself: `reply-too-large` (over a limit, named by
     * `field`), `reply-timeout`, `bad-reply` (not HTTP/1.1 it can read, or not the JSON it
     * expected), `closed` (the connection ended before the reply was whole),
     * `untrusted-certificate` (the TLS server's certificate did not verify; `field` is `tls`).
     */
    readonly code: string,
    message: string,
    /** The offending option: of the request, or of `connect()` (`maxReplyBytes`, `replyTimeoutMs`, `tls`) for the client's own limits and trust. */
    readonly field?: string,
    /** Seconds the daemon asked to wait before trying again (429, 503). */
    readonly retryAfter?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
