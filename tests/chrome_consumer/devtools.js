// Loads a .heapsnapshot with Chrome DevTools' own heap snapshot code: the HeapSnapshotLoader
// and JSHeapSnapshot that the Memory panel runs in its worker, served by a headless Chromium
// from its bundled frontend (http://127.0.0.1:PORT/devtools/...). Prints, as JSON, what the
// heapsight test compares with its own analysis: node count, total size, the Summary row of
// one type, the retainers of its instances, the dominator chain of one instance, and the
// objects retaining the most.
//
// usage: node devtools.js FILE.heapsnapshot TYPE_NAME [CHROMIUM]
'use strict';

const fs = require('fs');
const puppeteer = require('puppeteer-core');

async function analyse(text, typeName) {
  const worker = await import('/devtools/entrypoints/heap_snapshot_worker/heap_snapshot_worker.js');
  const loader = new worker.HeapSnapshotLoader.HeapSnapshotLoader({sendEvent() {}});
  // Chunks, as the Memory panel streams a file it loads.
  const chunk = 1 << 20;
  for (let at = 0; at < text.length; at += chunk) {
    loader.write(text.slice(at, at + chunk));
  }
  loader.close();
  // The second init thread of the panel, here on a message channel in the same page.
  const channel = new MessageChannel();
  new worker.HeapSnapshot.SecondaryInitManager(channel.port2);
  const snapshot = await loader.buildSnapshot(channel.port1);

  const summary = snapshot.aggregatesWithFilter({});
  const row = Object.values(summary).find(r => r.name === typeName) || null;
  const retainers = {};
  const instances = [];
  const top = [];
  for (const it = snapshot.allNodes(); it.hasNext(); it.next()) {
    const node = it.item();
    if (node.type() !== 'synthetic') {
      top.push({id: node.id(), name: node.name(), retained_size: node.retainedSize()});
    }
    if (node.name() !== typeName || node.type() !== 'object') {
      continue;
    }
    instances.push(node.nodeIndex);
    for (const edges = node.retainers(); edges.hasNext(); edges.next()) {
      const edge = edges.item();
      const key = `${edge.node().name()} --${edge.type()}--> ${typeName}`;
      retainers[key] = (retainers[key] || 0) + 1;
    }
  }
  top.sort((a, b) => b.retained_size - a.retained_size || a.id - b.id);
  const chain = instances.length ? snapshot.getDominatorsOf(instances[0]) : [];
  return {
    node_count: snapshot.nodeCount,
    total_size: snapshot.totalSize,
    summary_row: row && {name: row.name, count: row.count, self_size: row.self},
    instances: instances.length,
    retainers,
    dominator_chain: chain.map(d => ({name: d.nodeName, retained_size: d.retainedSize})),
    top_retained: top.slice(0, 20),
  };
}

async function main() {
  const [file, typeName, chromium = process.env.CHROMIUM || '/usr/bin/chromium'] = process.argv.slice(2);
  if (!file || !typeName) {
    throw new Error('usage: node devtools.js FILE.heapsnapshot TYPE_NAME [CHROMIUM]');
  }
  const text = fs.readFileSync(file, 'utf8');
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--remote-debugging-port=0'],
  });
  try {
    const port = new URL(browser.wsEndpoint()).port;
    const page = await browser.newPage();
    // Any page of the DevTools origin may import the frontend's modules.
    await page.goto(`http://127.0.0.1:${port}/json/version`);
    const result = await page.evaluate(analyse, text, typeName);
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    await browser.close();
  }
}

main().catch(error => {
  process.stderr.write(`Chrome DevTools could not load the snapshot: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
