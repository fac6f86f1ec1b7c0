/* modelshelf ui: renders the shelf's JSON documents (see modelshelf_ui/data.py).
 *
 * Every value that came from a shelf is data, never markup: it reaches the page only as
 * textContent, as a text node, or as an attribute value this file chose the name of. Nothing is
 * ever assigned to innerHTML, and every link is a "#/..." route built here, so a stored
 * "javascript:" URL stays text. The page's Content-Security-Policy forbids inline script as well.
 */
'use strict';

(function () {
  const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)*$/;
  const VERSION = /^[0-9]{1,10}$/;
  const PAGE_SIZE = 50;
  const DEFAULT_METRIC_COLUMNS = 3;
  const FROM_DISK = location.protocol === 'file:';
  const SVG = 'http://www.w3.org/2000/svg';
  const main = document.getElementById('main');
  const shelfUrl = document.getElementById('shelf-url');

  // --- data -----------------------------------------------------------------------------

  // A data script of the static build calls modelshelfData(path, document) when it has loaded.
  const pending = new Map();
  window.modelshelfData = function (path, documentData) {
    const waiting = pending.get(path);
    if (waiting) {
      pending.delete(path);
      waiting.resolve(documentData);
    }
  };

  function loadByScript(path) {
    // Opened from disk: browsers refuse fetch() of file:// URLs, but load scripts beside the page.
    return new Promise(function (resolve, reject) {
      const script = document.createElement('script');
      pending.set(path, { resolve: resolve, reject: reject });
      script.src = path + '.js';
      script.addEventListener('load', function () {
        script.remove();
        if (pending.has(path)) {
          pending.delete(path);
          reject(new Error('the data file ' + path + '.js holds no data'));
        }
      });
      script.addEventListener('error', function () {
        script.remove();
        pending.delete(path);
        reject(new Error('not found: ' + path + ' (gone from the shelf, or the site needs building again)'));
      });
      document.head.appendChild(script);
    });
  }

  async function load(path) {
    if (FROM_DISK) return loadByScript(path);
    const response = await fetch(path + '.json', { credentials: 'same-origin', cache: 'no-store' });
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    if (!response.ok) {
      throw new Error((body && typeof body.error === 'string' && body.error) || 'HTTP ' + response.status);
    }
    return body;
  }

  function checkName(name) {
    if (typeof name !== 'string' || name.length > 200 || !NAME.test(name)) {
      throw new Error('not a model name: ' + name);
    }
    return name;
  }

  const paths = {
    shelf: function () { return 'data/shelf'; },
    model: function (name) { return 'data/models/' + checkName(name) + '/_model'; },
    version: function (name, n) { return 'data/models/' + checkName(name) + '/_versions/' + Number(n); },
  };

  // --- routes: "#/", "#/model/<name>", "#/version/<name>/<n>", "#/compare/<name>/<n>,<n>" ----

  const routes = {
    shelf: function () { return '#/'; },
    model: function (name) { return '#/model/' + encodeURIComponent(name); },
    version: function (name, n) { return '#/version/' + encodeURIComponent(name) + '/' + Number(n); },
    compare: function (name, numbers) {
      return '#/compare/' + encodeURIComponent(name) + '/' + numbers.map(Number).join(',');
    },
  };

  function parseRoute() {
    const parts = location.hash.replace(/^#\/?/, '').split('/').map(function (part) {
      try {
        return decodeURIComponent(part);
      } catch (error) {
        return '';
      }
    });
    const kind = parts[0] || 'shelf';
    if (kind === 'model' && parts.length === 2) return { kind: kind, name: parts[1] };
    if (kind === 'version' && parts.length === 3 && VERSION.test(parts[2])) {
      return { kind: kind, name: parts[1], version: Number(parts[2]) };
    }
    if (kind === 'compare' && parts.length === 3) {
      const numbers = parts[2].split(',').filter(function (n) { return VERSION.test(n); }).map(Number);
      return { kind: kind, name: parts[1], versions: numbers };
    }
    return { kind: 'shelf' };
  }

  // --- building the page: text only ----------------------------------------------------

  function el(tag, attributes) {
    const node = document.createElement(tag);
    setAttributes(node, attributes);
    for (let i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    setAttributes(node, attributes);
    for (let i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function setAttributes(node, attributes) {
    for (const key in attributes || {}) {
      const value = attributes[key];
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.setAttribute('class', value);
      else if (key === 'text') node.textContent = String(value);
      else if (key.slice(0, 2) === 'on') node.addEventListener(key.slice(2), value);
      else if (key === 'href' && String(value).charAt(0) !== '#') throw new Error('only in-page links');
      else node.setAttribute(key, value === true ? '' : String(value));
    }
  }

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) {
      child.forEach(function (c) { append(node, c); });
    } else if (child instanceof Node) {
      node.appendChild(child);
    } else {
      node.appendChild(document.createTextNode(String(child)));
    }
  }

  function link(href, text, attributes) {
    return el('a', Object.assign({ href: href }, attributes || {}), text);
  }

  function badge(alias, href) {
    return link(href, '@' + alias, { class: 'badge', 'data-alias': alias });
  }

  function section(title, id) {
    const rest = Array.prototype.slice.call(arguments, 2);
    return el('section', { id: id }, el('h2', { text: title }), rest);
  }

  function show(nodes, title) {
    main.replaceChildren.apply(main, [].concat(nodes));
    document.title = title ? title + ' · modelshelf' : 'modelshelf';
    window.scrollTo(0, 0);
  }

  function showError(error) {
    show([el('p', { class: 'error', role: 'alert', text: 'Could not show this page: ' + (error && error.message ? error.message : error) }),
      el('p', {}, link(routes.shelf(), 'Back to the shelf'))], 'error');
  }

  // --- formatting -------------------------------------------------------------------------

  function human(size) {
    if (typeof size !== 'number') return '';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (size >= 1024 && i < units.length - 1) {
      size /= 1024;
      i++;
    }
    return i === 0 ? size + ' B' : size.toFixed(1) + ' ' + units[i];
  }

  function when(iso) {
    if (typeof iso !== 'string') return '';
    return iso.replace('T', ' ').replace(/:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/, ' $2').replace(/ Z$/, ' UTC');
  }

  function number(value) {
    if (typeof value !== 'number') return value === undefined || value === null ? '' : String(value);
    if (Number.isInteger(value)) return String(value);
    const size = Math.abs(value);
    if (size !== 0 && (size >= 1e6 || size < 1e-4)) return value.toExponential(4);
    return String(Number(value.toPrecision(6)));
  }

  function plain(value) {
    if (value === null || value === undefined) return '';
    if (typeof value === 'string') return value;
    if (typeof value === 'number') return number(value);
    return JSON.stringify(value);
  }

  function setShelf(url) {
    shelfUrl.textContent = typeof url === 'string' ? url : '';
  }

  // --- a sortable, paged table ------------------------------------------------------------

  // columns: {key, label, value(row) -> number|string|null for sorting, cell(row) -> node|text}
  function dataTable(options) {
    const state = { key: options.sortKey, descending: !!options.descending, page: 0, rows: options.rows };
    const table = el('table', { class: 'data', id: options.id });
    const pager = el('div', { class: 'pager' });
    const wrapper = el('div', { class: 'table-wrap' }, table, pager);

    function compare(a, b) {
      const column = options.columns.find(function (c) { return c.key === state.key; });
      if (!column) return 0;
      const x = column.value(a);
      const y = column.value(b);
      const xMissing = x === null || x === undefined || x === '';
      const yMissing = y === null || y === undefined || y === '';
      if (xMissing || yMissing) return xMissing === yMissing ? 0 : xMissing ? 1 : -1; // missing last
      const order = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      return state.descending ? -order : order;
    }

    function render() {
      const rows = state.rows.slice().sort(compare);
      const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
      state.page = Math.min(state.page, pages - 1);
      const head = el('tr', {}, options.columns.map(function (column) {
        const sorted = column.key === state.key;
        const button = el('button', {
          type: 'button', class: 'sort', 'data-key': column.key,
          onclick: function () {
            state.descending = sorted ? !state.descending : !!column.descendingFirst;
            state.key = column.key;
            state.page = 0;
            render();
          },
        }, column.label, sorted ? (state.descending ? ' ▼' : ' ▲') : '');
        return el('th', {
          scope: 'col', class: column.numeric ? 'num' : null,
          'aria-sort': sorted ? (state.descending ? 'descending' : 'ascending') : null,
        }, column.sortable === false ? column.label : button);
      }));
      const shown = rows.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE);
      const body = el('tbody', {}, shown.map(function (row) {
        return el('tr', { class: options.rowClass ? options.rowClass(row) : null, 'data-key': options.rowKey ? options.rowKey(row) : null },
          options.columns.map(function (column) {
            return el('td', { class: column.numeric ? 'num' : null, 'data-column': column.key }, column.cell(row));
          }));
      }));
      table.replaceChildren(el('thead', {}, head), body);
      if (!rows.length) body.appendChild(el('tr', {}, el('td', { colspan: options.columns.length, class: 'empty', text: options.empty || 'Nothing to show.' })));
      const first = rows.length ? state.page * PAGE_SIZE + 1 : 0;
      pager.replaceChildren(
        el('button', { type: 'button', class: 'prev', disabled: state.page === 0, onclick: function () { state.page--; render(); } }, '‹ Previous'),
        el('span', { class: 'page-info', text: first + '–' + Math.min(rows.length, (state.page + 1) * PAGE_SIZE) + ' of ' + rows.length + ' · page ' + (state.page + 1) + ' of ' + pages }),
        el('button', { type: 'button', class: 'next', disabled: state.page >= pages - 1, onclick: function () { state.page++; render(); } }, 'Next ›'));
      pager.hidden = pages <= 1;
    }

    render();
    return {
      node: wrapper,
      setRows: function (rows) { state.rows = rows; state.page = 0; render(); },
      setColumns: function (columns) { options.columns = columns; render(); },
    };
  }

  function keyValueTable(object, id, empty) {
    const keys = Object.keys(object || {}).sort();
    if (!keys.length) return el('p', { class: 'empty', id: id, text: empty || 'None.' });
    return el('table', { class: 'kv', id: id }, el('tbody', {}, keys.map(function (key) {
      const value = object[key];
      return el('tr', { 'data-key': key }, el('th', { scope: 'row', text: key }),
        el('td', { class: typeof value === 'number' ? 'num' : null }, typeof value === 'string' || typeof value === 'number' ? plain(value) : el('code', { text: plain(value) })));
    })));
  }

  // --- the shelf page ---------------------------------------------------------------------

  async function shelfPage() {
    const mine = rendering;
    const doc = await load(paths.shelf());
    if (mine !== rendering) return; // the reader has moved on
    setShelf(doc.url);
    const models = doc.models.map(function (m) {
      const aliases = Object.keys(m.aliases || {}).sort();
      const latest = m.latest || {};
      return Object.assign({}, m, {
        aliasList: aliases, latestInfo: latest,
        search: [m.name, latest.framework, latest.serializer, latest.description].concat(aliases.map(function (a) { return '@' + a; })).join(' ').toLowerCase(),
      });
    });
    const table = dataTable({
      id: 'models', rows: models, sortKey: 'name', empty: 'No models match.',
      rowKey: function (m) { return m.name; },
      rowClass: function (m) { return m.error ? 'error' : null; },
      columns: [
        { key: 'name', label: 'Model', value: function (m) { return m.name; }, cell: function (m) { return link(routes.model(m.name), m.name, { class: 'model-link' }); } },
        { key: 'latest', label: 'Latest', numeric: true, value: function (m) { return m.latestInfo.version; },
          cell: function (m) { return m.latestInfo.version ? link(routes.version(m.name, m.latestInfo.version), 'v' + m.latestInfo.version) : ''; } },
        { key: 'aliases', label: 'Aliases', value: function (m) { return m.aliasList.join(' '); },
          cell: function (m) { return m.aliasList.map(function (a) { return badge(a, routes.version(m.name, m.aliases[a])); }); } },
        { key: 'framework', label: 'Framework', value: function (m) { return m.latestInfo.framework; }, cell: function (m) { return m.latestInfo.framework || m.latestInfo.serializer || ''; } },
        { key: 'size', label: 'Size', numeric: true, descendingFirst: true, value: function (m) { return m.latestInfo.size; }, cell: function (m) { return human(m.latestInfo.size); } },
        { key: 'versions', label: 'Versions', numeric: true, descendingFirst: true, value: function (m) { return m.versions; }, cell: function (m) { return m.versions === undefined ? '' : String(m.versions); } },
        { key: 'changed', label: 'Last change', descendingFirst: true, value: function (m) { return m.last_change; }, cell: function (m) { return el('time', { datetime: m.last_change, text: when(m.last_change) }); } },
        { key: 'description', label: 'Description', value: function (m) { return m.error || m.latestInfo.description; },
          cell: function (m) { return m.error ? el('span', { class: 'error', text: m.error }) : m.latestInfo.description || ''; } },
      ],
    });
    const filter = el('input', {
      type: 'search', id: 'filter', placeholder: 'Filter by name, @alias, framework, description', 'aria-label': 'Filter models',
      oninput: function () {
        const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
        table.setRows(models.filter(function (m) { return words.every(function (w) { return m.search.indexOf(w) >= 0; }); }));
      },
    });
    show([el('h1', {}, 'Models ', el('span', { class: 'count', text: '(' + models.length + ')' })), el('div', { class: 'toolbar' }, filter), table.node], 'models');
    filter.focus();
  }

  // --- the model page ---------------------------------------------------------------------

  function metricChart(doc, metric) {
    const width = 760, height = 280, left = 70, right = 24, top = 28, bottom = 40;
    const points = doc.versions.filter(function (v) { return typeof v.metrics[metric] === 'number'; })
      .map(function (v) { return { version: v.version, value: v.metrics[metric] }; });
    const chart = svg('svg', { id: 'chart', class: 'chart', viewBox: '0 0 ' + width + ' ' + height, width: width, height: height, role: 'img', 'data-metric': metric, 'aria-label': metric + ' across versions' });
    if (!points.length) {
      chart.appendChild(svg('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'note' }, 'No version has this metric.'));
      return chart;
    }
    const xs = points.map(function (p) { return p.version; });
    const ys = points.map(function (p) { return p.value; });
    let x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    let y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    if (y0 === y1) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
    const margin = (y1 - y0) * 0.06;
    y0 -= margin; y1 += margin;
    const X = function (v) { return left + (v - x0) / (x1 - x0) * (width - left - right); };
    const Y = function (v) { return height - bottom - (v - y0) / (y1 - y0) * (height - top - bottom); };
    chart.appendChild(svg('line', { class: 'axis', x1: left, y1: height - bottom, x2: width - right, y2: height - bottom }));
    chart.appendChild(svg('line', { class: 'axis', x1: left, y1: top, x2: left, y2: height - bottom }));
    for (let i = 0; i <= 4; i++) {
      const value = y0 + (y1 - y0) * i / 4;
      chart.appendChild(svg('line', { class: 'grid', x1: left, x2: width - right, y1: Y(value), y2: Y(value) }));
      chart.appendChild(svg('text', { class: 'tick', x: left - 6, y: Y(value) + 4, 'text-anchor': 'end' }, number(Number(value.toPrecision(3)))));
    }
    const step = Math.max(1, Math.ceil((x1 - x0) / 10));
    for (let v = Math.ceil(x0); v <= x1; v += step) {
      chart.appendChild(svg('text', { class: 'tick', x: X(v), y: height - bottom + 16, 'text-anchor': 'middle' }, 'v' + v));
    }
    chart.appendChild(svg('text', { class: 'axis-label', x: (left + width - right) / 2, y: height - 6, 'text-anchor': 'middle' }, 'version'));
    // Where each alias points: a marker line, labels stacked when aliases share a version.
    const stacked = {};
    Object.keys(doc.aliases).sort().forEach(function (alias) {
      const target = doc.aliases[alias].version;
      if (typeof target !== 'number' || target < x0 || target > x1) return;
      const row = stacked[target] = (stacked[target] || 0) + 1;
      chart.appendChild(svg('g', { class: 'alias-marker', 'data-alias': alias, 'data-version': target },
        svg('line', { x1: X(target), x2: X(target), y1: top - 6, y2: height - bottom }),
        svg('text', { x: X(target) + 4, y: top - 14 + row * 12 }, '@' + alias)));
    });
    chart.appendChild(svg('polyline', { class: 'series', points: points.map(function (p) { return X(p.version) + ',' + Y(p.value); }).join(' ') }));
    points.forEach(function (p) {
      chart.appendChild(svg('circle', {
        class: 'point', cx: X(p.version), cy: Y(p.value), r: points.length > 200 ? 2 : 4,
        'data-version': p.version, 'data-value': p.value,
        onclick: function () { location.hash = routes.version(doc.name, p.version); },
      }, svg('title', {}, 'v' + p.version + ': ' + metric + ' = ' + number(p.value))));
    });
    return chart;
  }

  async function modelPage(route) {
    const mine = rendering;
    const doc = await load(paths.model(route.name));
    if (mine !== rendering) return; // the reader has moved on
    setShelf(doc.url);
    const name = doc.name;
    const selected = new Set();
    const deleted = doc.deleted.map(function (d) { return Object.assign({ deletedRow: true, metrics: {}, aliases: [] }, d); });
    const rows = doc.versions.concat(deleted);
    let shownMetrics = doc.metrics.slice(0, DEFAULT_METRIC_COLUMNS);

    const compareButton = el('button', {
      type: 'button', id: 'compare', disabled: true,
      onclick: function () { location.hash = routes.compare(name, Array.from(selected).sort(function (a, b) { return a - b; })); },
    }, 'Compare selected');
    function selectionChanged() {
      compareButton.disabled = selected.size < 2;
      compareButton.textContent = 'Compare selected (' + selected.size + ')';
    }

    function columns() {
      const base = [
        { key: 'select', label: '', sortable: false, value: function () { return null; },
          cell: function (v) {
            if (v.deletedRow) return '';
            return el('input', {
              type: 'checkbox', class: 'pick', 'aria-label': 'select v' + v.version, 'data-version': v.version, checked: selected.has(v.version),
              onchange: function (event) { if (event.target.checked) selected.add(v.version); else selected.delete(v.version); selectionChanged(); },
            });
          } },
        { key: 'version', label: 'Version', numeric: true, value: function (v) { return v.version; },
          cell: function (v) { return v.deletedRow ? el('span', { class: 'deleted-label', text: 'v' + v.version + ' deleted' }) : link(routes.version(name, v.version), 'v' + v.version); } },
        { key: 'created', label: 'Created', value: function (v) { return v.created_at || v.deleted_at; },
          cell: function (v) {
            if (v.deletedRow) return v.deleted_at ? 'deleted ' + when(v.deleted_at) + (v.deleted_by ? ' by ' + v.deleted_by : '') : 'deleted';
            return el('time', { datetime: v.created_at, text: when(v.created_at) });
          } },
        { key: 'by', label: 'By', value: function (v) { return v.created_by; }, cell: function (v) { return v.created_by || ''; } },
        { key: 'aliases', label: 'Aliases', value: function (v) { return v.aliases.join(' '); },
          cell: function (v) { return v.aliases.map(function (a) { return badge(a, routes.version(name, v.version)); }); } },
        { key: 'framework', label: 'Framework', value: function (v) { return v.framework; }, cell: function (v) { return v.framework || ''; } },
        { key: 'serializer', label: 'Serializer', value: function (v) { return v.serializer; },
          cell: function (v) {
            if (v.deletedRow) return '';
            return [v.serializer + ' (' + v.format + ')', v.safe ? '' : el('span', { class: 'unsafe', title: 'loading can run code: needs trust=True', text: ' unsafe' })];
          } },
        { key: 'size', label: 'Size', numeric: true, value: function (v) { return v.size; }, cell: function (v) { return human(v.size); } },
      ];
      const metricColumns = shownMetrics.map(function (metric) {
        return { key: 'metric:' + metric, label: metric, numeric: true, descendingFirst: true,
          value: function (v) { return typeof v.metrics[metric] === 'number' ? v.metrics[metric] : null; },
          cell: function (v) { return number(v.metrics[metric]); } };
      });
      return base.concat(metricColumns, [{ key: 'description', label: 'Description', value: function (v) { return v.description; }, cell: function (v) { return v.description || ''; } }]);
    }

    const table = dataTable({
      id: 'versions', rows: rows, columns: columns(), sortKey: 'version', descending: true,
      rowKey: function (v) { return v.version; },
      rowClass: function (v) { return v.deletedRow ? 'deleted' : null; },
    });

    const picker = el('fieldset', { class: 'metric-columns', id: 'metric-columns' }, el('legend', { text: 'Metric columns' }),
      doc.metrics.length ? doc.metrics.map(function (metric) {
        return el('label', {}, el('input', {
          type: 'checkbox', value: metric, checked: shownMetrics.indexOf(metric) >= 0,
          onchange: function () {
            shownMetrics = doc.metrics.filter(function (m) {
              return picker.querySelector('input[value="' + CSS.escape(m) + '"]').checked;
            });
            table.setColumns(columns());
          },
        }), ' ', metric);
      }) : el('span', { class: 'empty', text: 'No version has metrics.' }));

    const chartHolder = el('div', { class: 'chart-holder' });
    const metricSelect = el('select', {
      id: 'metric-select', 'aria-label': 'Metric to chart',
      onchange: function () { chartHolder.replaceChildren(metricChart(doc, metricSelect.value)); },
    }, doc.metrics.map(function (metric) { return el('option', { value: metric }, metric); }));
    if (doc.metrics.length) chartHolder.appendChild(metricChart(doc, doc.metrics[0]));

    const timeline = dataTable({
      id: 'timeline', rows: doc.timeline, sortKey: 'at', descending: true, empty: 'No alias was ever set.',
      columns: [
        { key: 'at', label: 'When', value: function (e) { return e.at; }, cell: function (e) { return el('time', { datetime: e.at, text: when(e.at) }); } },
        { key: 'by', label: 'Who', value: function (e) { return e.by; }, cell: function (e) { return e.by; } },
        { key: 'alias', label: 'Alias', value: function (e) { return e.alias; }, cell: function (e) { return e.alias ? el('span', { class: 'badge', text: '@' + e.alias }) : ''; } },
        { key: 'change', label: 'Change', sortable: false, value: function () { return null; },
          cell: function (e) {
            if (e.action === 'removed') return 'removed' + (typeof e.from === 'number' ? ' (was v' + e.from + ')' : '');
            if (typeof e.from === 'number') return ['moved from ', link(routes.version(name, e.from), 'v' + e.from), ' to ', link(routes.version(name, e.to), 'v' + e.to)];
            return ['set to ', link(routes.version(name, e.to), 'v' + e.to)];
          } },
      ],
    });

    const aliasBadges = Object.keys(doc.aliases).sort().map(function (alias) {
      return el('span', { class: 'alias-pointer' }, badge(alias, routes.version(name, doc.aliases[alias].version)), ' → v' + doc.aliases[alias].version);
    });
    show([
      el('nav', { class: 'crumbs' }, link(routes.shelf(), 'Models'), ' / ', name),
      el('h1', { id: 'model-name', text: name }),
      el('p', { class: 'aliases' }, aliasBadges.length ? aliasBadges : el('span', { class: 'empty', text: 'No aliases.' })),
      el('p', { class: 'summary', text: doc.versions.length + ' live versions' + (doc.deleted.length ? ', ' + doc.deleted.length + ' deleted' : '') }),
      section('Metric across versions', 'chart-section', doc.metrics.length ? el('label', {}, 'Metric ', metricSelect) : el('p', { class: 'empty', text: 'No version has metrics.' }), chartHolder),
      section('Versions', 'versions-section', picker, el('div', { class: 'toolbar' }, compareButton), table.node),
      section('Alias timeline', 'timeline-section', timeline.node),
    ], name);
    selectionChanged();
  }

  // --- the version page -------------------------------------------------------------------

  function snippet(id, label, text) {
    const pre = el('pre', { id: id, class: 'snippet' }, el('code', { text: text }));
    const button = el('button', {
      type: 'button', class: 'copy', 'data-for': id,
      onclick: function () {
        function selectIt() {
          const range = document.createRange();
          range.selectNodeContents(pre);
          const selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          button.textContent = 'Selected: press Ctrl+C';
        }
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(function () { button.textContent = 'Copied'; }, selectIt);
        } else {
          selectIt();
        }
      },
    }, 'Copy');
    return el('div', { class: 'snippet-box' }, el('h3', {}, label, ' ', button), pre);
  }

  function shellQuote(text) {
    return /^[A-Za-z0-9_./:@=+-]+$/.test(text) ? text : "'" + text.replace(/'/g, "'\\''") + "'";
  }

  function lineage(doc) {
    const l = doc.lineage || {};
    const rows = {};
    if (l.python) rows.python = l.python;
    if (l.platform) rows.platform = l.platform;
    if (!l.git) rows.git = 'not made inside a git repository';
    if (l.git) {
      rows['git commit'] = l.git.commit || '';
      rows['git branch'] = l.git.branch || '(detached)';
      rows['git dirty'] = l.git.dirty === null || l.git.dirty === undefined ? '' : String(l.git.dirty);
    }
    if (l.source) rows['copied from'] = l.source;
    return [keyValueTable(rows, 'lineage'), el('h3', { text: 'Packages' }), keyValueTable(l.packages, 'packages', 'None recorded.')];
  }

  function signature(doc) {
    const sig = doc.signature;
    if (!sig) return el('p', { class: 'empty', id: 'signature', text: 'The serializer recorded no signature.' });
    const block = function (title, entries) {
      if (!Array.isArray(entries) || !entries.length) return null;
      return [el('h3', { text: title }), el('table', { class: 'data' }, el('thead', {}, el('tr', {}, el('th', { text: 'Name' }), el('th', { text: 'Details' }))),
        el('tbody', {}, entries.map(function (entry) {
          const rest = Object.assign({}, entry);
          delete rest.name;
          return el('tr', {}, el('td', { text: plain(entry && entry.name) }), el('td', {}, el('code', { text: JSON.stringify(rest) })));
        })))];
    };
    const other = Object.assign({}, sig);
    delete other.inputs;
    delete other.outputs;
    return el('div', { id: 'signature' }, block('Inputs', sig.inputs), block('Outputs', sig.outputs),
      Object.keys(other).length ? el('pre', { text: JSON.stringify(other, null, 2) }) : null);
  }

  async function versionPage(route) {
    const mine = rendering;
    const doc = await load(paths.version(route.name, route.version));
    if (mine !== rendering) return; // the reader has moved on
    setShelf(doc.url);
    const name = doc.name;
    const ser = doc.serializer || {};
    const files = dataTable({
      id: 'files', rows: doc.files, sortKey: 'path', empty: 'No files.',
      rowKey: function (f) { return f.path; },
      columns: [
        { key: 'path', label: 'Path', value: function (f) { return f.path; }, cell: function (f) { return el('code', { class: 'path', text: f.path }); } },
        { key: 'size', label: 'Size', numeric: true, value: function (f) { return f.size; }, cell: function (f) { return el('span', { title: f.size + ' bytes', text: human(f.size) }); } },
        { key: 'sha256', label: 'sha256', value: function (f) { return f.sha256; }, cell: function (f) { return el('code', { class: 'sha', text: f.sha256 }); } },
        { key: 'shared', label: 'Shared with', value: function (f) { return f.shared_with.length; },
          cell: function (f) {
            if (!f.shared_with.length) return el('span', { class: 'muted', text: 'only this version' });
            const shown = f.shared_with.slice(0, 12);
            const links = [];
            shown.forEach(function (n, i) { if (i) links.push(', '); links.push(link(routes.version(name, n), 'v' + n)); });
            if (f.shared_with.length > shown.length) links.push(' and ' + (f.shared_with.length - shown.length) + ' more');
            return el('span', { class: 'shared' }, 'stored once, also in ', links);
          } },
      ],
    });
    const ref = name + ':' + doc.version;
    const python = 'import modelshelf\n\nshelf = modelshelf.open(' + JSON.stringify(doc.url) + ')\n' +
      (ser.safe ? 'model = shelf.load(' + JSON.stringify(ref) + ')\n'
        : '# ' + ser.format + ' can run code when loaded: only with trust in whoever uploaded it\nmodel = shelf.load(' + JSON.stringify(ref) + ', trust=True)\n');
    const cli = 'modelshelf --shelf ' + shellQuote(doc.url) + ' download ' + ref + ' ' + shellQuote('./' + name.split('/').pop() + '-v' + doc.version);
    const overview = {
      created: when(doc.created_at), by: doc.created_by,
      framework: doc.framework ? (doc.framework.name + ' ' + doc.framework.version).trim() : '',
      serializer: ser.name + ' (' + ser.distribution + ' ' + ser.distribution_version + ')',
      format: ser.format, size: human(doc.total_size) + ' in ' + doc.files.length + ' files',
    };
    show([
      el('nav', { class: 'crumbs' }, link(routes.shelf(), 'Models'), ' / ', link(routes.model(name), name), ' / ', 'v' + doc.version),
      el('h1', { id: 'version-title' }, name, el('span', { class: 'muted', text: ' v' + doc.version }), ' ', doc.aliases.map(function (a) { return badge(a, routes.version(name, doc.version)); })),
      el('p', { id: 'safety', class: ser.safe ? 'safe' : 'unsafe' }, ser.safe
        ? 'Safe format (' + ser.format + '): loading it runs no code from the file.'
        : 'Unsafe format (' + ser.format + '): loading it can run code from the file, so load needs trust=True.'),
      el('p', { id: 'description', class: 'description', text: doc.description || '' }),
      keyValueTable(overview, 'overview'),
      section('Use it', 'use-section', snippet('python-snippet', 'Python', python), snippet('cli-snippet', 'Command line', cli)),
      section('Metrics', 'metrics-section', keyValueTable(doc.metrics, 'metrics')),
      section('Parameters', 'params-section', keyValueTable(doc.params, 'params')),
      section('Tags', 'tags-section', keyValueTable(doc.tags, 'tags')),
      section('Metadata', 'metadata-section', keyValueTable(doc.metadata, 'metadata')),
      section('Files', 'files-section', files.node),
      section('Signature', 'signature-section', signature(doc)),
      section('Lineage', 'lineage-section', lineage(doc)),
    ], ref);
  }

  // --- the compare page -------------------------------------------------------------------

  async function comparePage(route) {
    const mine = rendering;
    const numbers = Array.from(new Set(route.versions));
    if (numbers.length < 2) throw new Error('choose two or more versions to compare');
    const docs = await Promise.all(numbers.map(function (n) { return load(paths.version(route.name, n)); }));
    if (mine !== rendering) return; // the reader has moved on
    setShelf(docs[0].url);
    const name = route.name;
    const rows = [];
    function add(group, label, valueOf) {
      const values = docs.map(function (d) { const v = valueOf(d); return v === undefined || v === null ? '' : plain(v); });
      rows.push({ group: group, label: label, values: values, same: values.every(function (v) { return v === values[0]; }) });
    }
    function keys(pick) {
      const all = new Set();
      docs.forEach(function (d) { Object.keys(pick(d) || {}).forEach(function (k) { all.add(k); }); });
      return Array.from(all).sort();
    }
    add('Version', 'created', function (d) { return when(d.created_at); });
    add('Version', 'by', function (d) { return d.created_by; });
    add('Version', 'framework', function (d) { return d.framework ? d.framework.name + ' ' + d.framework.version : ''; });
    add('Version', 'serializer', function (d) { return d.serializer.name + ' (' + d.serializer.format + ')'; });
    add('Version', 'safe format', function (d) { return d.serializer.safe ? 'yes' : 'no'; });
    add('Version', 'size', function (d) { return human(d.total_size); });
    add('Version', 'description', function (d) { return d.description; });
    [['Metrics', 'metrics'], ['Parameters', 'params'], ['Tags', 'tags'], ['Metadata', 'metadata']].forEach(function (pair) {
      keys(function (d) { return d[pair[1]]; }).forEach(function (key) {
        add(pair[0], key, function (d) { return (d[pair[1]] || {})[key]; });
      });
    });
    const paths_ = new Set();
    docs.forEach(function (d) { d.files.forEach(function (f) { paths_.add(f.path); }); });
    Array.from(paths_).sort().forEach(function (path) {
      add('Files', path, function (d) {
        const f = d.files.find(function (x) { return x.path === path; });
        return f ? f.sha256.slice(0, 12) + '… ' + human(f.size) : '';
      });
    });
    add('Signature', 'inputs', function (d) { return d.signature ? d.signature.inputs : ''; });
    add('Signature', 'outputs', function (d) { return d.signature ? d.signature.outputs : ''; });

    const table = el('table', { class: 'data compare', id: 'compare-table' },
      el('thead', {}, el('tr', {}, el('th', { text: '' }), docs.map(function (d) {
        return el('th', { scope: 'col', 'data-version': d.version }, link(routes.version(name, d.version), 'v' + d.version));
      }))),
      el('tbody', {}, rows.map(function (row, i) {
        const groupStart = i === 0 || rows[i - 1].group !== row.group;
        return el('tr', { class: (row.same ? 'same' : 'differs') + (groupStart ? ' group-start' : ''), 'data-field': row.group + ':' + row.label },
          el('th', { scope: 'row' }, el('span', { class: 'group', text: row.group + ' ' }), row.label),
          row.values.map(function (v) { return el('td', { text: v }); }));
      })));
    const toggle = el('input', { type: 'checkbox', id: 'diff-only', onchange: function () { table.classList.toggle('diff-only', toggle.checked); } });
    const differing = rows.filter(function (r) { return !r.same; }).length;
    show([
      el('nav', { class: 'crumbs' }, link(routes.shelf(), 'Models'), ' / ', link(routes.model(name), name), ' / compare'),
      el('h1', {}, 'Compare ' + name + ' ', docs.map(function (d) { return 'v' + d.version; }).join(', ')),
      el('div', { class: 'toolbar' }, el('label', {}, toggle, ' Show differences only'), el('span', { class: 'muted', id: 'diff-count', text: ' ' + differing + ' of ' + rows.length + ' fields differ' })),
      table,
    ], 'compare ' + name);
  }

  // --- the router -------------------------------------------------------------------------

  let rendering = 0;
  async function route() {
    const ticket = ++rendering;
    const target = parseRoute();
    try {
      if (target.kind === 'model') await modelPage(target);
      else if (target.kind === 'version') await versionPage(target);
      else if (target.kind === 'compare') await comparePage(target);
      else await shelfPage();
    } catch (error) {
      if (ticket === rendering) showError(error);
    }
    if (ticket === rendering) document.body.setAttribute('data-ready', target.kind);
  }

  window.addEventListener('hashchange', function () {
    document.body.removeAttribute('data-ready');
    route();
  });
  route();
})();
