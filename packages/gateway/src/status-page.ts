/**
 * The gateway's own status page (GET /): pool, queue, spend and per-provider latency, read from
 * /v1/status every two seconds. Plain DOM, no framework: the page is served by the gateway itself.
 */
export const STATUS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>UtilityNet gateway</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border-bottom:1px solid #ddd;padding:.3em .8em;text-align:left}
.num{text-align:right;font-variant-numeric:tabular-nums}h2{font-size:1.1em;margin-top:1.5em}
</style></head><body>
<h1>UtilityNet inference gateway</h1>
<div id="summary">loading…</div>
<h2>Pool</h2><table id="pool"><thead><tr><th>lease</th><th>provider</th><th>price/h</th><th>slots</th><th>running</th><th>answered</th><th>failed</th><th>p50 ms</th><th>p99 ms</th></tr></thead><tbody></tbody></table>
<h2>Avoided providers</h2><ul id="avoided"></ul>
<script>
const UNIT = 10n ** 18n;
function unc(s) { const v = BigInt(s); const w = v / UNIT; const f = (v % UNIT).toString().padStart(18, '0').slice(0, 6).replace(/0+$/, ''); return w + (f ? '.' + f : '') + ' UNC'; }
function cell(tr, text, cls) { const td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); }
async function refresh() {
  try {
    const s = await (await fetch('v1/status')).json();
    document.getElementById('summary').textContent =
      'queue ' + s.queue.queued + ' (oldest ' + s.queue.oldestWaitMs + ' ms) · jobs done ' + s.jobs.done + ', failed ' + s.jobs.failed +
      ' · p99 ' + (s.recentP99Ms ?? '–') + ' ms · spend ' + unc(s.committedPerHour) + '/h of ' + unc(s.budgetPerHour) + '/h · spent ' + unc(s.spent) +
      ' · leases opened ' + s.leases.length + ' · disputes ' + s.disputes + ' · receipts rejected ' + s.counters.rejectedReceipts;
    const body = document.querySelector('#pool tbody');
    body.replaceChildren();
    for (const l of s.pool) {
      const tr = document.createElement('tr');
      cell(tr, l.leaseId.slice(0, 16) + '…'); cell(tr, l.provider); cell(tr, unc(l.pricePerHour), 'num'); cell(tr, l.slots, 'num');
      cell(tr, l.inFlight, 'num'); cell(tr, l.answered, 'num'); cell(tr, l.failed, 'num'); cell(tr, l.p50Ms ?? '–', 'num'); cell(tr, l.p99Ms ?? '–', 'num');
      body.appendChild(tr);
    }
    const av = document.getElementById('avoided');
    av.replaceChildren(...s.avoided.map((a) => { const li = document.createElement('li'); li.textContent = a.provider + (a.untilMs ? ' until ' + new Date(a.untilMs).toISOString() : ' for good'); return li; }));
  } catch (e) { document.getElementById('summary').textContent = 'gateway unreachable: ' + e; }
}
refresh(); setInterval(refresh, 2000);
</script></body></html>
`;
