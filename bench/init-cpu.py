#!/usr/bin/env python3
"""Init CPU: the CPU time a function spends from exec to its first `GET .../invocation/next`,
and its peak RSS by then (`VmHWM`).

Every thread's time on CPU, summed from /proc/<pid>/task/*/schedstat at the moment the first
`next` arrives at a stub Runtime API, which never answers. Unlike P1's wall time it hardly
moves with the machine's load, so functions and release profiles can be compared on a busy
machine (bench/README.md, "Second round"). Secrets come from the environment; DynamoDB is
not called at init (WARM_UP off).

    python3 bench/init-cpu.py target/release load-context,append-turn 15
"""
import http.server, os, socket, statistics, subprocess, sys, threading, time
rel, fns, n = sys.argv[1], sys.argv[2].split(','), int(sys.argv[3])
state = {}
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if '/invocation/next' in self.path and 'pid' in state and 'cpu' not in state:
            pid = state['pid']; total = 0
            for t in os.listdir(f'/proc/{pid}/task'):
                try: total += int(open(f'/proc/{pid}/task/{t}/schedstat').read().split()[0])
                except OSError: pass
            try: state['rss'] = next(int(l.split()[1]) for l in open(f'/proc/{pid}/status') if l.startswith('VmHWM')) / 1000
            except (OSError, StopIteration): state['rss'] = 0.0
            state['cpu'] = total / 1e6; state['wall'] = (time.monotonic() - state['t0']) * 1000
            state['ev'].set()
        time.sleep(5)
srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H); port = srv.server_address[1]
threading.Thread(target=srv.serve_forever, daemon=True).start()
env = {'PATH': '/usr/bin:/bin', 'AWS_LAMBDA_RUNTIME_API': f'127.0.0.1:{port}', 'AWS_LAMBDA_FUNCTION_MEMORY_SIZE': '128',
       'AWS_LAMBDA_FUNCTION_VERSION': '$LATEST', 'AWS_REGION': 'us-east-1', 'AWS_ACCESS_KEY_ID': 'local',
       'AWS_SECRET_ACCESS_KEY': 'local', 'AWS_ENDPOINT_URL_DYNAMODB': 'http://127.0.0.1:1', 'TABLE_NAME': 'bench',
       'CURSOR_SECRET': 'tidewater-bench-cursor-secret-not-deployed', 'RECEIPT_SALT': 'tidewater-bench-receipt-salt-not-deployed',
       'HASH_KEY': 'tidewater-bench-hash-key-not-deployed-anywhere', 'LOCAL_JWT_SECRET': 'x' * 32}
for fn in fns:
    cpu, wall, rss = [], [], []
    for i in range(n + 1):
        state.clear(); state['ev'] = threading.Event(); state['t0'] = time.monotonic()
        p = subprocess.Popen([f'{rel}/{fn}'], env=dict(env, AWS_LAMBDA_FUNCTION_NAME=fn), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        state['pid'] = p.pid
        ok = state['ev'].wait(10)
        p.kill(); p.wait()
        if ok and i > 0: cpu.append(state['cpu']); wall.append(state['wall']); rss.append(state['rss'])
    print(f'{fn}: init CPU median {statistics.median(cpu):.2f} ms (min {min(cpu):.2f}, max {max(cpu):.2f}), wall median {statistics.median(wall):.2f} ms, peak RSS median {statistics.median(rss):.2f} MB, {len(cpu)} starts' if cpu else f'{fn}: no start reached next')
