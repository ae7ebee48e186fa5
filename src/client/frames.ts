/**
 * The time bound of a WebSocket's replies. `ws` bounds a frame's size (maxPayload) but not its
 * time: a daemon, or a proxy in front of it, that sends half a frame and stalls would hold a
 * spawn or a session forever. So the bytes are watched as they arrive, read only far enough to
 * know where each head and frame ends (the upgrade's HTTP heads; RFC 6455's frame headers, whose
 * payloads are skipped), and anything begun must end within the bound: the upgrade's reply from
 * its first byte to the end of its head (an interim `1xx` head counts on its own: what follows it
 * is the daemon's to start when it likes), a frame from its first byte to its last, a message sent
 * in fragments from its first frame to its final one. Between them, waiting is the run's.
 */
import { connect as netConnect, isIP, type NetConnectOpts, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';

/** The longest frame header: 2 bytes, an 8-byte length, a 4-byte mask. */
const MAX_FRAME_HEADER = 14;

export class WsReplyClock {
  private timer: NodeJS.Timeout | null = null;
  /** Of the bound, what is left for what has begun (less while the caller paused reading). */
  private left: number;
  private since = 0;
  private paused = false;
  private headSocket: Socket | null = null;
  /** Of the upgrade's reply: the last bytes read, to find its head's end across reads. */
  private tail = '';
  private headBegan = 0;
  /** When the last whole head began: the reply's, once the upgrade is refused. */
  private replyBegan = 0;
  private readonly header = Buffer.alloc(MAX_FRAME_HEADER);
  private have = 0;
  /** Payload bytes of the current frame still to come. */
  private payload = 0;
  /** A data message sent in fragments is not whole until its final frame. */
  private inMessage = false;

  constructor(
    private readonly timeoutMs: number,
    private readonly secure: boolean,
    /** Called once the bound has passed, with what was still incomplete. */
    private readonly expired: (what: 'head' | 'frame') => void,
  ) {
    this.left = timeoutMs;
  }

  /** ws's `createConnection`: its own connection, watched from its first byte. */
  readonly connect = (options: NetConnectOpts & ConnectionOptions & { socketPath?: string; host?: string }): Socket => {
    let socket: Socket;
    if (options.socketPath !== undefined) socket = netConnect({ ...options, path: options.socketPath } as NetConnectOpts);
    else if (this.secure) {
      // As ws's own: a certificate names a host, never an address.
      const servername = options.servername ?? (isIP(options.host ?? '') === 0 ? options.host : '');
      socket = tlsConnect({ ...options, path: undefined, servername } as ConnectionOptions);
    } else socket = netConnect({ ...options, path: undefined } as NetConnectOpts);
    this.headSocket = socket;
    socket.on('data', this.headBytes);
    socket.once('close', () => this.stop());
    return socket;
  };

  private readonly headBytes = (d: Buffer): void => {
    // The bytes kept from the last read are of a head still in progress (its timer running).
    const text = this.tail + d.toString('latin1');
    let at = 0;
    for (;;) {
      if (this.timer === null) {
        if (at >= text.length) break;
        this.headBegan = performance.now();
        this.start();
      }
      const end = text.indexOf('\r\n\r\n', at);
      if (end < 0) break;
      this.replyBegan = this.headBegan;
      this.clear();
      at = end + 4;
    }
    this.tail = text.slice(Math.max(at, text.length - 3));
  };

  /** Ms left, for the body of a refused upgrade, of the bound of the reply whose head has been read. */
  headLeft(): number {
    this.endHead();
    return Math.max(1, Math.round(this.timeoutMs - (performance.now() - this.replyBegan)));
  }

  /** The upgrade is done: from now on, frames (ws hands the bytes read past the head back to the socket). */
  upgraded(socket: Socket): void {
    this.endHead();
    socket.on('data', this.frameBytes);
  }

  private endHead(): void {
    this.headSocket?.off('data', this.headBytes);
    this.headSocket = null;
    this.clear();
  }

  private readonly frameBytes = (d: Buffer): void => {
    let at = 0;
    while (at < d.length) {
      if (this.timer === null && !this.paused) this.start();
      if (this.payload > 0) {
        const take = Math.min(this.payload, d.length - at);
        this.payload -= take;
        at += take;
        if (this.payload === 0) this.frameEnd();
        continue;
      }
      this.header[this.have++] = d[at++] as number;
      if (this.have < 2) continue;
      const b1 = this.header[1] as number;
      const len7 = b1 & 0x7f;
      const size = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
      if (this.have < size) continue;
      this.payload = len7 < 126 ? len7 : len7 === 126 ? this.header.readUInt16BE(2) : this.header.readUInt32BE(2) * 2 ** 32 + this.header.readUInt32BE(6);
      if (this.payload === 0) this.frameEnd();
    }
  };

  private frameEnd(): void {
    const b0 = this.header[0] as number;
    this.have = 0;
    // Control frames (opcode 8 and up) may come between a message's fragments, and leave it as it was.
    if ((b0 & 0x0f) < 8) this.inMessage = (b0 & 0x80) === 0;
    if (!this.inMessage) this.clear();
  }

  /** The caller stopped reading: the bytes it does not read are not the daemon's delay. */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
      this.left -= performance.now() - this.since;
    }
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.have > 0 || this.payload > 0 || this.inMessage) this.start();
  }

  stop(): void {
    this.endHead();
    this.paused = true;
  }

  private start(): void {
    this.since = performance.now();
    const what = this.headSocket !== null ? 'head' : 'frame';
    this.timer = setTimeout(() => {
      this.timer = null;
      this.expired(what);
    }, Math.max(1, Math.round(this.left)));
  }

  private clear(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.left = this.timeoutMs;
  }
}
