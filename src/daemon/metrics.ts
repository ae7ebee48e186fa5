/** The daemon's counters in Prometheus' text format (a handful of series: no client library). */
export class Metrics {
  readonly runs = new Map<string, number>();
  readonly requests = new Map<string, number>();
  runSeconds = 0;

  countRun(status: string, seconds: number): void {
    this.runs.set(status, (this.runs.get(status) ?? 0) + 1);
    this.runSeconds += seconds;
  }

  countRequest(code: number): void {
    const k = String(code);
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
  }

  render(gauges: { queued: number; running: number; boxes: number; storeBytes: number; storeFiles: number; draining: boolean }): string {
    const lines: string[] = [];
    const family = (name: string, type: string, help: string): void => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    };
    family('sandcell_runs_total', 'counter', 'Runs that ended, by result status (setup-error: the box could not be built).');
    for (const [status, n] of this.runs) lines.push(`sandcell_runs_total{status="${status}"} ${n}`);
    family('sandcell_run_seconds_total', 'counter', 'Wall time spent in runs, from admission to result.');
    lines.push(`sandcell_run_seconds_total ${this.runSeconds}`);
    family('sandcell_http_requests_total', 'counter', 'HTTP requests answered, by status code.');
    for (const [code, n] of this.requests) lines.push(`sandcell_http_requests_total{code="${code}"} ${n}`);
    const gauge = (name: string, help: string, v: number): void => {
      family(name, 'gauge', help);
      lines.push(`${name} ${v}`);
    };
    gauge('sandcell_queue_length', 'Runs waiting for a slot.', gauges.queued);
    gauge('sandcell_running', 'Runs in progress.', gauges.running);
    gauge('sandcell_boxes', 'Living boxes held for clients.', gauges.boxes);
    gauge('sandcell_file_store_bytes', 'Bytes in the file store.', gauges.storeBytes);
    gauge('sandcell_file_store_files', 'Files in the file store.', gauges.storeFiles);
    gauge('sandcell_draining', '1 while the daemon drains before it exits.', gauges.draining ? 1 : 0);
    return lines.join('\n') + '\n';
  }
}
