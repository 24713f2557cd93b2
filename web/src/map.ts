// The catalog map: every product as a dot at its 2-D position from `lookalike map`
// (similar products lie close together), coloured by a catalog field, with pan and zoom by
// mouse, touch and keyboard. Hovering shows the product; choosing one opens "more like this".
import { api, ApiError, type Filters, type Item, type MapData } from './api';
import { byId, fieldLabel, h, numberFormat } from './dom';
import type { State } from './state';

// Tableau 10 plus two: distinct and readable on white; "other" values are grey.
const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#86bcb6', '#d37295', '#a0cbe8'];
const OTHER = '#9aa0aa';
const DIMMED = '#e3e5ea';
const GRID = 96;

export interface MapCallbacks {
  onOpen: (id: string) => void;
  onColour: (field: string) => void;
  onError: (err: unknown) => void;
  setStatus: (text: string) => void;
}

export class MapView {
  private data?: MapData;
  private loading?: Promise<MapData | undefined>;
  private readonly canvas = byId<HTMLCanvasElement>('map-canvas');
  private readonly tip = byId('map-tip');
  private readonly legend = byId('map-legend');
  private readonly colourSelect = byId<HTMLSelectElement>('map-colour');
  private readonly missing = byId('map-missing');
  private readonly body = byId('map-body');
  /** Screen position = centre + (data - mid) * base * zoom + pan. */
  private zoom = 1;
  private panX = 0;
  private panY = 0;
  private mid = { x: 0, y: 0 };
  private base = 1;
  private width = 0;
  private height = 0;
  private cells = new Map<number, number[]>();
  private bounds = { minX: 0, minY: 0, maxX: 1, maxY: 1 };
  private field = '';
  /** Palette slot per point (-1: other). */
  private slots = new Int16Array(0);
  private mask?: Uint8Array;
  private hovered = -1;
  private frame = 0;
  private readonly items = new Map<string, Promise<Item>>();
  private readonly pointers = new Map<number, { x: number; y: number }>();
  private dragged = 0;

  constructor(private readonly callbacks: MapCallbacks) {
    this.setupInput();
    new ResizeObserver(() => this.resize()).observe(this.canvas);
    this.colourSelect.addEventListener('change', () => this.callbacks.onColour(this.colourSelect.value));
    byId('zoom-in').addEventListener('click', () => this.zoomAt(this.width / 2, this.height / 2, 1.5));
    byId('zoom-out').addEventListener('click', () => this.zoomAt(this.width / 2, this.height / 2, 1 / 1.5));
    byId('zoom-reset').addEventListener('click', () => this.reset());
  }

  async show(state: State, facetFields: string[]): Promise<void> {
    if (!this.data) {
      this.callbacks.setStatus('Loading the map…');
      this.loading ??= api.map().catch((err) => {
        this.loading = undefined;
        if (err instanceof ApiError && err.status === 404) {
          this.missing.replaceChildren(h('p', {}, h('strong', {}, 'No map yet. '), err.message));
          this.missing.hidden = false;
          this.body.hidden = true;
          this.callbacks.setStatus('');
          return undefined;
        }
        throw err;
      });
      const data = await this.loading;
      if (!data) return;
      this.load(data);
    }
    this.missing.hidden = true;
    this.body.hidden = false;
    const fields = facetFields.filter((f) => this.data!.attributes[f]);
    if (this.colourSelect.options.length !== fields.length) {
      this.colourSelect.replaceChildren(...fields.map((f) => h('option', { value: f }, fieldLabel(f))));
    }
    const field = state.colour && fields.includes(state.colour) ? state.colour : this.data!.attribute && fields.includes(this.data!.attribute) ? this.data!.attribute : fields.includes('articleType') ? 'articleType' : fields[0] ?? '';
    this.colourSelect.value = field;
    this.colourBy(field);
    this.filter(state.filters);
    this.resize();
    const shown = this.mask ? this.mask.reduce((a, b) => a + b, 0) : this.data!.points.length;
    this.callbacks.setStatus(`${numberFormat.format(this.data!.points.length)} products on the map (${this.data!.method})${this.mask ? `, ${numberFormat.format(shown)} match the filters` : ''}.`);
  }

  private load(data: MapData): void {
    this.data = data;
    const b = { minX: Infinity, minY: Infinity, maxX: -Infinity, maxY: -Infinity };
    for (const p of data.points) {
      b.minX = Math.min(b.minX, p.x); b.maxX = Math.max(b.maxX, p.x);
      b.minY = Math.min(b.minY, p.y); b.maxY = Math.max(b.maxY, p.y);
    }
    if (!data.points.length) Object.assign(b, { minX: 0, minY: 0, maxX: 1, maxY: 1 });
    this.bounds = b;
    this.mid = { x: (b.minX + b.maxX) / 2, y: (b.minY + b.maxY) / 2 };
    // A coarse grid over the data makes "which dot is under the pointer" cheap.
    this.cells.clear();
    data.points.forEach((p, i) => {
      const key = this.cellOf(p.x, p.y);
      const list = this.cells.get(key);
      if (list) list.push(i); else this.cells.set(key, [i]);
    });
  }

  private cellOf(x: number, y: number): number {
    const b = this.bounds;
    const cx = Math.min(GRID - 1, Math.max(0, Math.floor(((x - b.minX) / (b.maxX - b.minX || 1)) * GRID)));
    const cy = Math.min(GRID - 1, Math.max(0, Math.floor(((y - b.minY) / (b.maxY - b.minY || 1)) * GRID)));
    return cy * GRID + cx;
  }

  private colourBy(field: string): void {
    if (!this.data) return;
    this.field = field;
    const attr = this.data.attributes[field];
    const n = this.data.points.length;
    this.slots = new Int16Array(n).fill(-1);
    if (!attr) return this.legend.replaceChildren();
    // Slots go to the values most common on the map; the rest are "other".
    const counts = new Map<number, number>();
    for (const c of attr.codes) if (c >= 0) counts.set(c, (counts.get(c) ?? 0) + 1);
    const top = [...counts].sort((a, b) => b[1] - a[1]).slice(0, PALETTE.length);
    const slotOf = new Map(top.map(([code], slot) => [code, slot]));
    for (let i = 0; i < n; i++) this.slots[i] = slotOf.get(attr.codes[i]) ?? -1;
    const others = n - top.reduce((a, [, c]) => a + c, 0);
    this.legend.replaceChildren(
      ...top.map(([code, count], slot) => legendItem(PALETTE[slot], attr.values[code], count)),
      ...(others ? [legendItem(OTHER, 'Other', others)] : []),
    );
    this.draw();
  }

  private filter(filters: Filters): void {
    if (!this.data) return;
    const checks = Object.entries(filters).filter(([, v]) => v).map(([field, value]) => {
      const attr = this.data!.attributes[field];
      return attr && { codes: attr.codes, code: attr.values.findIndex((v) => v.toLowerCase() === value.toLowerCase()) };
    }).filter((c): c is { codes: number[]; code: number } => Boolean(c));
    if (!checks.length) {
      this.mask = undefined;
    } else {
      const n = this.data.points.length;
      this.mask = new Uint8Array(n);
      for (let i = 0; i < n; i++) this.mask[i] = checks.every((c) => c.codes[i] === c.code) ? 1 : 0;
    }
    this.draw();
  }

  // ------------------------------------------------------------ geometry and drawing

  private resize(): void {
    const rect = this.canvas.getBoundingClientRect();
    if (!rect.width || !this.data) return;
    this.width = rect.width;
    this.height = rect.height;
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(rect.width * dpr);
    this.canvas.height = Math.round(rect.height * dpr);
    const b = this.bounds;
    const pad = 16;
    this.base = Math.min((this.width - 2 * pad) / (b.maxX - b.minX || 1), (this.height - 2 * pad) / (b.maxY - b.minY || 1));
    this.draw();
  }

  private toScreen(x: number, y: number): [number, number] {
    const s = this.base * this.zoom;
    return [this.width / 2 + (x - this.mid.x) * s + this.panX, this.height / 2 - (y - this.mid.y) * s + this.panY];
  }

  private toData(sx: number, sy: number): [number, number] {
    const s = this.base * this.zoom;
    return [(sx - this.width / 2 - this.panX) / s + this.mid.x, -(sy - this.height / 2 - this.panY) / s + this.mid.y];
  }

  private draw(): void {
    if (this.frame || !this.data) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.paint();
    });
  }

  private paint(): void {
    const ctx = this.canvas.getContext('2d');
    if (!ctx || !this.data || !this.width) return;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.width, this.height);
    const points = this.data.points;
    const r = Math.min(6, 1.4 * Math.sqrt(this.zoom) + (points.length < 2000 ? 1.5 : 0));
    const mask = this.mask;
    const visible = (sx: number, sy: number) => sx > -r && sy > -r && sx < this.width + r && sy < this.height + r;
    // Dimmed dots first, then by colour so each colour is one run of fillRect.
    if (mask) {
      ctx.fillStyle = DIMMED;
      for (let i = 0; i < points.length; i++) {
        if (mask[i]) continue;
        const [sx, sy] = this.toScreen(points[i].x, points[i].y);
        if (visible(sx, sy)) ctx.fillRect(sx - r, sy - r, 2 * r, 2 * r);
      }
    }
    for (let slot = -1; slot < PALETTE.length; slot++) {
      ctx.fillStyle = slot < 0 ? OTHER : PALETTE[slot];
      for (let i = 0; i < points.length; i++) {
        if (this.slots[i] !== slot || (mask && !mask[i])) continue;
        const [sx, sy] = this.toScreen(points[i].x, points[i].y);
        if (visible(sx, sy)) ctx.fillRect(sx - r, sy - r, 2 * r, 2 * r);
      }
    }
    if (this.hovered >= 0) {
      const [sx, sy] = this.toScreen(points[this.hovered].x, points[this.hovered].y);
      ctx.strokeStyle = '#111';
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(sx, sy, r + 5, 0, Math.PI * 2);
      ctx.stroke();
      // The tip follows its dot through pans and zooms.
      this.placeTip([sx, sy]);
    }
  }

  /** The dot nearest to a screen position, within `radius` pixels (-1: none). */
  private nearest(sx: number, sy: number, radius = 10): number {
    if (!this.data) return -1;
    const [x, y] = this.toData(sx, sy);
    const reach = radius / (this.base * this.zoom);
    const b = this.bounds;
    const cw = (b.maxX - b.minX || 1) / GRID;
    const ch = (b.maxY - b.minY || 1) / GRID;
    let best = -1;
    let bestD = Infinity;
    const x0 = Math.max(0, Math.floor((x - reach - b.minX) / cw)), x1 = Math.min(GRID - 1, Math.floor((x + reach - b.minX) / cw));
    const y0 = Math.max(0, Math.floor((y - reach - b.minY) / ch)), y1 = Math.min(GRID - 1, Math.floor((y + reach - b.minY) / ch));
    for (let cy = y0; cy <= y1; cy++) {
      for (let cx = x0; cx <= x1; cx++) {
        for (const i of this.cells.get(cy * GRID + cx) ?? []) {
          if (this.mask && !this.mask[i]) continue;
          const p = this.data.points[i];
          const [px, py] = this.toScreen(p.x, p.y);
          const d = (px - sx) ** 2 + (py - sy) ** 2;
          if (d < bestD && d <= radius * radius) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }

  private zoomAt(sx: number, sy: number, factor: number): void {
    const zoom = Math.min(200, Math.max(0.5, this.zoom * factor));
    const [x, y] = this.toData(sx, sy);
    this.zoom = zoom;
    // Keep the data point under the pointer where it is.
    const s = this.base * zoom;
    this.panX = sx - this.width / 2 - (x - this.mid.x) * s;
    this.panY = sy - this.height / 2 + (y - this.mid.y) * s;
    this.draw();
  }

  private reset(): void {
    this.zoom = 1;
    this.panX = this.panY = 0;
    this.hover(-1);
    this.draw();
  }

  // ------------------------------------------------------------ hover and input

  private hover(index: number, at?: [number, number]): void {
    if (index === this.hovered) {
      if (index >= 0 && at) this.placeTip(at);
      return;
    }
    this.hovered = index;
    this.draw();
    if (index < 0 || !this.data) {
      this.tip.hidden = true;
      return;
    }
    const id = this.data.points[index].id;
    const [sx, sy] = at ?? this.toScreen(this.data.points[index].x, this.data.points[index].y);
    const value = this.data.attributes[this.field]?.values[this.data.attributes[this.field].codes[index]] ?? '';
    const name = h('span', { class: 'map-tip-name' }, id);
    this.tip.replaceChildren(h('img', { src: `/images/${encodeURIComponent(id)}`, alt: '', width: 60, height: 80 }), h('span', {}, name, value ? h('span', { class: 'help' }, value) : null));
    this.tip.hidden = false;
    this.placeTip([sx, sy]);
    this.itemOf(id).then((item) => {
      if (this.hovered === index) name.textContent = item.metadata.productDisplayName || item.id;
    }, () => {});
    this.canvas.setAttribute('aria-label', `Catalog map. Selected: ${id}${value ? `, ${value}` : ''}. Enter opens more like it.`);
  }

  private placeTip([sx, sy]: [number, number]): void {
    this.tip.style.left = `${Math.max(0, Math.min(this.width - 220, sx + 14))}px`;
    this.tip.style.top = `${Math.max(0, Math.min(this.height - 100, sy + 14))}px`;
  }

  private itemOf(id: string): Promise<Item> {
    let item = this.items.get(id);
    if (!item) {
      item = api.item(id);
      this.items.set(id, item);
    }
    return item;
  }

  private setupInput(): void {
    const c = this.canvas;
    const local = (e: PointerEvent | WheelEvent): [number, number] => {
      const rect = c.getBoundingClientRect();
      return [e.clientX - rect.left, e.clientY - rect.top];
    };
    c.addEventListener('wheel', (e) => {
      e.preventDefault();
      const [sx, sy] = local(e);
      this.zoomAt(sx, sy, Math.exp(-e.deltaY * 0.0015));
    }, { passive: false });
    c.addEventListener('pointerdown', (e) => {
      c.setPointerCapture(e.pointerId);
      this.pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
      this.dragged = 0;
    });
    c.addEventListener('pointermove', (e) => {
      const before = this.pointers.get(e.pointerId);
      if (!before) {
        const [sx, sy] = local(e);
        this.hover(this.nearest(sx, sy), [sx, sy]);
        return;
      }
      if (this.pointers.size === 2) {
        // Pinch: zoom by the change of distance between the two fingers, around their middle.
        const [other] = [...this.pointers].filter(([id]) => id !== e.pointerId).map(([, p]) => p);
        const d0 = Math.hypot(before.x - other.x, before.y - other.y);
        const d1 = Math.hypot(e.clientX - other.x, e.clientY - other.y);
        const rect = c.getBoundingClientRect();
        if (d0 > 0) this.zoomAt((e.clientX + other.x) / 2 - rect.left, (e.clientY + other.y) / 2 - rect.top, d1 / d0);
      } else {
        this.panX += e.clientX - before.x;
        this.panY += e.clientY - before.y;
        this.draw();
      }
      this.dragged += Math.abs(e.clientX - before.x) + Math.abs(e.clientY - before.y);
      this.pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    });
    const end = (e: PointerEvent) => {
      const was = this.pointers.delete(e.pointerId);
      if (was && e.type === 'pointerup' && this.dragged < 5 && !this.pointers.size) {
        const [sx, sy] = local(e);
        const i = this.nearest(sx, sy, e.pointerType === 'touch' ? 20 : 10);
        if (i >= 0 && this.data) this.callbacks.onOpen(this.data.points[i].id);
      }
    };
    c.addEventListener('pointerup', end);
    c.addEventListener('pointercancel', end);
    c.addEventListener('pointerleave', (e) => { if (e.pointerType === 'mouse' && !this.pointers.size) this.hover(-1); });
    c.addEventListener('keydown', (e) => {
      const step = 40;
      const moves: Record<string, () => void> = {
        ArrowLeft: () => { this.panX += step; },
        ArrowRight: () => { this.panX -= step; },
        ArrowUp: () => { this.panY += step; },
        ArrowDown: () => { this.panY -= step; },
        '+': () => this.zoomAt(this.width / 2, this.height / 2, 1.5),
        '=': () => this.zoomAt(this.width / 2, this.height / 2, 1.5),
        '-': () => this.zoomAt(this.width / 2, this.height / 2, 1 / 1.5),
        '0': () => this.reset(),
        Enter: () => {
          if (this.hovered >= 0 && this.data) this.callbacks.onOpen(this.data.points[this.hovered].id);
        },
        Escape: () => this.hover(-1),
      };
      const move = moves[e.key];
      if (!move) return;
      e.preventDefault();
      move();
      if (e.key !== 'Enter' && e.key !== 'Escape') {
        // The keyboard "cursor" is the centre of the map: select the dot nearest to it.
        this.hover(this.nearest(this.width / 2, this.height / 2, Math.max(this.width, this.height)));
      }
      this.draw();
    });
    c.addEventListener('focus', () => {
      // Keyboard focus selects the dot at the centre; a mouse click does not.
      if (this.hovered < 0 && this.data && c.matches(':focus-visible')) this.hover(this.nearest(this.width / 2, this.height / 2, Math.max(this.width, this.height)));
    });
  }
}

function legendItem(colour: string, label: string, count: number): HTMLLIElement {
  const swatch = h('span', { class: 'swatch', 'aria-hidden': 'true' });
  swatch.style.background = colour;
  return h('li', {}, swatch, `${label} `, h('span', { class: 'help' }, numberFormat.format(count)));
}
