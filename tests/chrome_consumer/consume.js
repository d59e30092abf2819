// Loads a .heapsnapshot with Meta's memlab (a real consumer of the V8 format, independent
// of heapsight) and prints, as JSON, what the heapsight test compares with its own analysis:
// node count, the retainers of one type's instances, their dominator and its retained size,
// the shortest path memlab finds to one instance, and the objects retaining the most.
//
// usage: node consume.js FILE.heapsnapshot TYPE_NAME
'use strict';

const memlab = require('@memlab/core');

async function main() {
  const [file, typeName] = process.argv.slice(2);
  if (!file || !typeName) {
    throw new Error('usage: node consume.js FILE.heapsnapshot TYPE_NAME');
  }
  memlab.config.muteConsole = true;
  const snapshot = await memlab.utils.getSnapshotFromFile(file, {buildNodeIdIndex: true});
  // The same preparation memlab's own analyses run: shortest paths, dominators, retained sizes.
  memlab.analysis.preparePathFinder(snapshot);

  const instances = [];
  snapshot.nodes.forEach(node => {
    if (node.name === typeName && node.type === 'object') {
      instances.push(node);
    }
  });
  const retainers = {};
  const dominators = new Map();
  for (const node of instances) {
    for (const edge of node.referrers) {
      const key = `${edge.fromNode.name} --${edge.type}--> ${typeName}`;
      retainers[key] = (retainers[key] || 0) + 1;
    }
    const dom = node.dominatorNode;
    if (dom) {
      dominators.set(dom.id, dom);
    }
  }
  const dominatorList = [...dominators.values()].map(dom => ({
    id: dom.id,
    name: dom.name,
    type: dom.type,
    retained_size: dom.retainedSize,
    self_size: dom.self_size,
    edge_count: dom.edge_count,
    retainers: dom.referrers.map(e => ({from: e.fromNode.name, edge: String(e.name_or_index), type: e.type})),
  }));

  // memlab's shortest retainer path to the first instance, root first.
  const path = [];
  let cur = instances[0];
  while (cur && cur.pathEdge && path.length < 100) {
    const edge = cur.pathEdge;
    path.unshift({from: edge.fromNode.name, edge: String(edge.name_or_index), type: edge.type, to: cur.name});
    cur = edge.fromNode;
  }

  const top = [];
  snapshot.nodes.forEach(node => {
    if (node.type !== 'synthetic') {
      top.push({id: node.id, name: node.name, retained_size: node.retainedSize});
    }
  });
  top.sort((a, b) => b.retained_size - a.retained_size || a.id - b.id);

  let totalSelf = 0;
  snapshot.nodes.forEach(node => {
    totalSelf += node.self_size;
  });
  const root = snapshot.nodes.get(0);
  process.stdout.write(JSON.stringify({
    node_count: snapshot.nodes.length,
    edge_count: snapshot.edges.length,
    total_self_size: totalSelf,
    root_retained_size: root.retainedSize,
    instances: instances.length,
    instance_self_size: instances.reduce((sum, n) => sum + n.self_size, 0),
    retainers,
    dominators: dominatorList,
    path,
    top_retained: top.slice(0, 20),
  }) + '\n');
}

main().then(
  () => process.exit(0),
  error => {
    process.stderr.write(`memlab could not load the snapshot: ${error && error.stack ? error.stack : error}\n`);
    process.exit(1);
  },
);
