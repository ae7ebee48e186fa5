/**
 * The daemon's metrics, in Prometheus' text format by prom-client, on a registry of the daemon's
 * own (nothing of the process's default registry). Counters are counted as requests and runs end;
 * gauges are read from the daemon when scraped.
 */
import { Counter, Gauge, Registry } from 'prom-client';

export interface Gauges {
  queued: number;
  running: number;
  boxes: number;
  storeBytes: number;
  storeFiles: number;
  draining: boolean;
}

export class Metrics {
  private readonly registry = new Registry();
  private readonly runs = new Counter({ name: 'sandcell_runs_total', help: 'Runs that ended, by result status (setup-error: the box could not be built).', labelNames: ['status'], registers: [this.registry] });
  private readonly runSeconds = new Counter({ name: 'sandcell_run_seconds_total', help: 'Wall time spent in runs, from admission to result.', registers: [this.registry] });
  private readonly requests = new Counter({ name: 'sandcell_http_requests_total', help: 'HTTP requests answered, by status code.', labelNames: ['code'], registers: [this.registry] });

  constructor(gauges: () => Gauges) {
    const gauge = (name: string, help: string, value: (g: Gauges) => number): void => {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(value(gauges()));
        },
      });
    };
    gauge('sandcell_queue_length', 'Runs waiting for a slot.', (g) => g.queued);
    gauge('sandcell_running', 'Runs in progress.', (g) => g.running);
    gauge('sandcell_boxes', 'Living boxes held for clients.', (g) => g.boxes);
    gauge('sandcell_file_store_bytes', 'Bytes in the file store.', (g) => g.storeBytes);
    gauge('sandcell_file_store_files', 'Files in the file store.', (g) => g.storeFiles);
    gauge('sandcell_draining', '1 while the daemon drains before it exits.', (g) => (g.draining ? 1 : 0));
  }

  countRun(status: string, seconds: number): void {
    this.runs.inc({ status });
    this.runSeconds.inc(seconds);
  }

  countRequest(code: number): void {
    this.requests.inc({ code: String(code) });
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ text: string; contentType: string }> {
    return { text: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
