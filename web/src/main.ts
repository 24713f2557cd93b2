// The Lookalike page: search by photo, "more like this", browse and map the catalog.
// State lives in the URL (see state.ts) except the uploaded photo, which stays in memory so
// that changing k, the threshold or a filter re-runs the search without a new upload.
import './styles.css';
import { api, ApiError, type Facets, type Health, type Item, type Look, type Region, type SearchParams, type SearchResponse } from './api';
import { byId, debounce, fieldLabel, h, megabytes, numberFormat } from './dom';
import { gridKeyboard, renderGrid } from './grid';
import { MapView } from './map';
import { K_CHOICES, parseState, similarHref, stateQuery, type State, type View } from './state';
import { DEFAULT_K, DEFAULT_MODE, MAX_K_HTTP, MAX_UPLOAD_BYTES } from '../../src/defaults';

const PAGE_SIZE = 24;
const EXAMPLES = 6;

const $ = {
  status: byId('status'),
  error: byId('error'),
  main: byId('main'),
  catalogInfo: byId('catalog-info'),
  details: byId<HTMLDetailsElement>('controls-details'),
  controls: byId<HTMLFormElement>('controls'),
  k: byId<HTMLSelectElement>('k'),
  kControl: byId('k-control'),
  threshold: byId<HTMLInputElement>('threshold'),
  thresholdValue: byId<HTMLOutputElement>('threshold-value'),
  thresholdControl: byId('threshold-control'),
  mode: byId<HTMLSelectElement>('mode'),
  modeControl: byId('mode-control'),
  filters: byId('filters'),
  clearFilters: byId<HTMLButtonElement>('clear-filters'),
  views: { search: byId('view-search'), browse: byId('view-browse'), map: byId('view-map') } as Record<View, HTMLElement>,
  dropzone: byId('dropzone'),
  pick: byId<HTMLButtonElement>('pick'),
  file: byId<HTMLInputElement>('file'),
  uploadHelp: byId('upload-help'),
  query: byId('query'),
  queryImage: byId<HTMLImageElement>('query-image'),
  queryFrame: byId('query-frame'),
  regions: byId('regions'),
  cropBox: byId('crop-box'),
  cropHelp: byId('crop-help'),
  wholePhoto: byId<HTMLButtonElement>('whole-photo'),
  queryCaption: byId('query-caption'),
  queryNote: byId('query-note'),
  newPhoto: byId<HTMLButtonElement>('new-photo'),
  examples: byId('examples'),
  exampleList: byId('example-list'),
  resultsSection: byId('results-section'),
  resultsTitle: byId('results-title'),
  results: byId('results'),
  empty: byId('empty'),
  browseGrid: byId('browse-grid'),
  browseSummary: byId('browse-summary'),
  browseEmpty: byId('browse-empty'),
  prevPage: byId<HTMLButtonElement>('prev-page'),
  nextPage: byId<HTMLButtonElement>('next-page'),
  pageInfo: byId('page-info'),
  words: byId<HTMLFormElement>('words'),
  text: byId<HTMLInputElement>('text'),
  clearText: byId<HTMLButtonElement>('clear-text'),
  shopLook: byId<HTMLInputElement>('shop-look'),
  shopLookControl: byId('shop-look-control'),
  looksSection: byId('looks-section'),
  looks: byId('looks'),
  feedback: byId('feedback'),
};

/** "Like" / "Not this" marks on results, for the query shown; cleared with a new query. */
let marks: { like: string[]; unlike: string[] } = { like: [], unlike: [] };

let health: Health | undefined;
let facetFields: string[] = [];
let state: State = parseState('', [], MAX_K_HTTP);
/** The uploaded photo, kept for re-running the search when a control changes. */
let photo: { blob: Blob; name: string; url: string; crop?: Region } | undefined;
let running: AbortController | undefined;
let facetsRequest: AbortController | undefined;
let focusResultsNext = false;
/** The query whose results the grid shows ("item:<id>" or the photo's object URL). */
let shownQuery = '';
/** Regions proposed for the current photo (redrawn after a click that drew no box). */
let lastRegions: Region[] = [];

const mapView = new MapView({
  onOpen: (id) => openSimilar(id),
  onColour: (field) => navigate({ colour: field }, 'replace'),
  onError: (err) => showError(err),
  setStatus: (text) => setStatus(text),
});

// ---------------------------------------------------------------- navigation

function navigate(patch: Partial<State>, history: 'push' | 'replace' = 'push'): void {
  state = { ...state, ...patch };
  const url = stateQuery(state);
  if (url !== location.pathname + location.search) window.history[history === 'push' ? 'pushState' : 'replaceState'](null, '', url);
  renderControls();
  void run();
}

function openSimilar(id: string): void {
  focusResultsNext = true;
  navigate({ view: 'search', id });
  window.scrollTo({ top: 0 });
}

function params(): SearchParams {
  return { k: state.k, threshold: state.threshold, filters: state.filters, mode: state.mode, text: state.text };
}

/** A result liked or marked "not this": the results are searched again from all the marks. */
function mark(id: string, liked: boolean): void {
  const like = marks.like.filter((x) => x !== id), unlike = marks.unlike.filter((x) => x !== id);
  (liked ? like : unlike).push(id);
  marks = { like, unlike };
  void run();
}

function renderMarks(): void {
  const n = marks.like.length, m = marks.unlike.length;
  $.feedback.hidden = !n && !m;
  if (!n && !m) return;
  const parts = [n && `${n} liked`, m && `${m} marked "not this"`].filter(Boolean).join(' and ');
  $.feedback.replaceChildren(h('span', {}, `Refined by ${parts}.`), h('button', { type: 'button', class: 'link-button', onclick: () => { marks = { like: [], unlike: [] }; void run(); } }, 'Undo the refinements'));
}

/** Each product of the photo: a numbered box over it and a strip of its results. */
function showLooks(looks: Look[]): void {
  $.looksSection.hidden = !looks.length;
  $.looks.replaceChildren(...looks.map((look, i) => h('section', { class: 'look', 'aria-labelledby': `look-${i + 1}` },
    h('h3', { id: `look-${i + 1}` }, `Product ${i + 1}`),
    (() => {
      const list = h('ol', { class: 'grid strip', 'aria-labelledby': `look-${i + 1}` });
      renderGrid(list, look.results, { href: (id) => similarHref(state, id), onOpen: openSimilar });
      return list;
    })())));
  for (const old of $.regions.querySelectorAll('.look-box')) old.remove();
  looks.forEach((look, i) => {
    const box = h('div', { class: 'look-box', 'aria-hidden': 'true' }, h('span', {}, String(i + 1)));
    place(box, look.box);
    $.regions.append(box);
  });
}

async function run(): Promise<void> {
  running?.abort();
  const controller = new AbortController();
  running = controller;
  for (const [view, section] of Object.entries($.views)) section.hidden = view !== state.view;
  for (const a of document.querySelectorAll<HTMLAnchorElement>('.tabs a')) {
    if (a.dataset.view === state.view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  $.kControl.hidden = $.thresholdControl.hidden = state.view !== 'search';
  $.modeControl.hidden = state.view !== 'search' || !health?.modes.length;
  clearError();
  refreshFacets();
  try {
    if (state.view === 'search') await runSearch(controller.signal);
    else if (state.view === 'browse') await runBrowse(controller.signal);
    else await mapView.show(state, facetFields);
  } catch (err) {
    if ((err as Error).name === 'AbortError') return;
    setBusy(false);
    setStatus('');
    // No heading over an empty grid: the error says what happened.
    if (!$.results.childElementCount) $.resultsSection.hidden = true;
    showError(err, () => void run());
  }
}

// ---------------------------------------------------------------- search

async function runSearch(signal: AbortSignal): Promise<void> {
  const hasQuery = Boolean(state.id || photo);
  $.examples.hidden = hasQuery || Boolean(state.text);
  $.dropzone.classList.toggle('compact', hasQuery);
  $.query.hidden = !hasQuery;
  $.text.value = state.text ?? '';
  $.clearText.hidden = !state.text;
  $.shopLookControl.hidden = !photo || Boolean(state.id);
  if (!hasQuery && !state.text) {
    $.resultsSection.hidden = true;
    $.looksSection.hidden = true;
    setStatus('');
    return;
  }
  $.resultsSection.hidden = false;
  // Results of another query must not stand under this one while it loads or if it fails.
  const queryKey = state.id ? `item:${state.id}` : photo ? photo.url : 'text';
  if (queryKey !== shownQuery) {
    $.results.replaceChildren();
    $.empty.hidden = true;
    $.looksSection.hidden = true;
    marks = { like: [], unlike: [] };
    shownQuery = queryKey;
  }
  renderMarks();
  if (!hasQuery) {
    await runTextSearch(signal);
    return;
  }
  const refined = marks.like.length + marks.unlike.length > 0;
  $.resultsTitle.textContent = refined ? 'Refined with your likes' : 'Similar products';
  if (refined) $.looksSection.hidden = true;
  setBusy(true);
  setStatus(state.id ? 'Finding similar products…' : 'Looking at your photo…');
  $.queryFrame.classList.toggle('photo', !state.id);
  $.cropHelp.hidden = Boolean(state.id);
  if (state.id) showRegions([], undefined);
  let response;
  if (state.id) {
    const id = state.id;
    $.queryImage.src = `/images/${encodeURIComponent(id)}`;
    $.queryImage.alt = 'The product searched for';
    $.queryCaption.textContent = 'More like this product';
    $.queryNote.textContent = 'The link of this page shows these results: copy it to share them.';
    void api.item(id, signal).then((item) => {
      const name = item.metadata.productDisplayName || item.id;
      $.queryImage.alt = name;
      $.queryCaption.replaceChildren(h('strong', {}, name), h('span', { class: 'help' }, `More like this · ${describe(item)}`));
    }, () => { /* the search below reports a missing item */ });
    response = refined ? await api.recommend({ like: [id, ...marks.like], unlike: marks.unlike }, params(), signal) : await api.similar(id, params(), signal);
  } else {
    const p = photo!;
    $.queryImage.src = p.url;
    $.queryImage.alt = 'Your photo';
    $.queryCaption.replaceChildren(h('strong', {}, 'Your photo'));
    $.queryNote.textContent = 'Photos are not part of the link: the page address keeps only your settings and filters.';
    try {
      response = refined
        ? await api.recommend({ like: marks.like, unlike: marks.unlike, photo: { blob: p.blob, name: p.name } }, params(), signal)
        : await api.searchPhoto(p.blob, p.name, params(), signal, p.crop, $.shopLook.checked);
    } catch (err) {
      // A photo the server refuses (not an image, too large) is dropped: pick another.
      if (err instanceof ApiError && [413, 415, 422].includes(err.status)) {
        forgetPhoto();
        $.resultsSection.hidden = true;
        $.examples.hidden = false;
      }
      throw err;
    }
  }
  setBusy(false);
  if (!state.id && !refined) {
    lastRegions = response.regions ?? [];
    showRegions(lastRegions, photo?.crop);
    showLooks(response.looks ?? []);
    if (response.looks?.length) $.resultsTitle.textContent = 'Similar to the whole photo';
  }
  showResults(response);
}

function showResults(response: SearchResponse): void {
  renderGrid($.results, response.results, { href: (id) => similarHref(state, id), onOpen: openSimilar, onFeedback: response.query.kind === 'text' ? undefined : mark });
  if (response.query.corrected) $.queryNote.textContent = `No product matched "${response.query.text}": showing "${response.query.corrected}".`;
  const n = response.results.length;
  $.empty.hidden = n > 0;
  if (!n) renderEmpty();
  setStatus(n ? `${n} similar product${n === 1 ? '' : 's'}, most similar first (${duration(response.tookMs)}).` : 'No similar products found.');
  if (focusResultsNext) {
    focusResultsNext = false;
    $.resultsTitle.focus({ preventScroll: true });
  }
}

/** Words alone: products matching them, best match first; a click is "more like this". */
async function runTextSearch(signal: AbortSignal): Promise<void> {
  setBusy(true);
  setStatus('Finding products with these words…');
  $.resultsTitle.textContent = `Products matching "${state.text}"`;
  const response = await api.searchText(state.text!, params(), signal);
  setBusy(false);
  const n = response.results.length;
  renderGrid($.results, response.results, { href: (id) => similarHref(state, id), onOpen: openSimilar });
  $.empty.hidden = n > 0;
  if (!n) $.empty.replaceChildren(h('p', {}, h('strong', {}, `No product matches "${state.text}".`)), h('p', {}, 'Try fewer or other words.'));
  setStatus(n ? `${n} product${n === 1 ? '' : 's'} matching ${response.query.corrected ? `"${response.query.corrected}" (no product matched "${state.text}")` : `"${state.text}"`}, best match first.` : 'No products match these words.');
}

// ---------------------------------------------------------------- pointing at the product

const place = (el: HTMLElement, r: Region) => {
  el.style.left = `${r.x * 100}%`;
  el.style.top = `${r.y * 100}%`;
  el.style.width = `${r.w * 100}%`;
  el.style.height = `${r.h * 100}%`;
};

/** Draws the proposed regions (buttons) and the box searched, over the photo. */
function showRegions(regions: Region[], crop: Region | undefined): void {
  $.regions.replaceChildren(...regions.map((r, i) => {
    const button = h('button', { type: 'button', class: 'region', 'aria-label': `Search region ${i + 1} of the photo`, title: 'Search only this region' });
    place(button, r);
    button.addEventListener('click', () => searchRegion(r));
    return button;
  }));
  $.cropBox.hidden = !crop;
  if (crop) place($.cropBox, crop);
  $.wholePhoto.hidden = !crop;
}

function searchRegion(region: Region | undefined): void {
  if (!photo) return;
  photo.crop = region ? { x: region.x, y: region.y, w: region.w, h: region.h } : undefined;
  void run();
}

/** Dragging over the photo draws a box; letting go searches only that box. */
function setupCrop(): void {
  let start: { x: number; y: number } | undefined;
  let box: Region | undefined;
  const rel = (event: PointerEvent) => {
    const rect = $.queryImage.getBoundingClientRect();
    return {
      x: Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width)),
      y: Math.min(1, Math.max(0, (event.clientY - rect.top) / rect.height)),
    };
  };
  $.queryFrame.addEventListener('pointerdown', (event) => {
    if (!photo || state.id || (event.target as HTMLElement).closest('.region') || event.button !== 0) return;
    event.preventDefault();
    start = rel(event);
    box = undefined;
    $.queryFrame.setPointerCapture(event.pointerId);
  });
  $.queryFrame.addEventListener('pointermove', (event) => {
    if (!start) return;
    const p = rel(event);
    box = { x: Math.min(start.x, p.x), y: Math.min(start.y, p.y), w: Math.abs(p.x - start.x), h: Math.abs(p.y - start.y) };
    $.cropBox.hidden = false;
    place($.cropBox, box);
  });
  const finish = () => {
    const drawn = box;
    start = undefined;
    box = undefined;
    // A click or a sliver is not a box: keep what was searched.
    if (drawn && drawn.w > 0.05 && drawn.h > 0.05) searchRegion(drawn);
    else showRegions(lastRegions, photo?.crop);
  };
  $.queryFrame.addEventListener('pointerup', finish);
  $.queryFrame.addEventListener('pointercancel', finish);
  $.wholePhoto.addEventListener('click', () => searchRegion(undefined));
  $.shopLook.addEventListener('change', () => void run());
}

function setupWords(): void {
  $.words.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = $.text.value.trim();
    navigate({ view: 'search', text: text || undefined });
  });
  $.clearText.addEventListener('click', () => navigate({ text: undefined }));
}

function renderEmpty(): void {
  const filtered = Object.values(state.filters).some(Boolean);
  const actions: HTMLElement[] = [];
  if (state.threshold > 0) {
    actions.push(h('button', { type: 'button', onclick: () => navigate({ threshold: Math.max(0, Math.round((state.threshold - 0.1) * 100) / 100) }, 'replace') }, 'Lower the minimum similarity'));
  }
  if (filtered) actions.push(h('button', { type: 'button', onclick: () => navigate({ filters: {} }) }, 'Clear the filters'));
  const reason = state.threshold > 0
    ? `Nothing above the minimum similarity of ${state.threshold.toFixed(2)}${filtered ? ' with these filters' : ''}.`
    : 'No product matches these filters.';
  $.empty.replaceChildren(h('p', {}, h('strong', {}, reason)), h('p', {}, 'Lower the minimum similarity or loosen the filters to see more.'), h('div', { class: 'actions' }, ...actions));
}

function usePhoto(blob: Blob, name: string): void {
  clearError();
  const limit = health?.limits.maxUploadBytes ?? MAX_UPLOAD_BYTES;
  if (blob.size > limit) {
    showError(new ApiError(413, 'UPLOAD_TOO_LARGE', `This photo is ${megabytes(blob.size)}, over the limit of ${megabytes(limit)}. Choose a smaller photo, or save it at a smaller size first.`));
    return;
  }
  if (!blob.size) {
    showError(new ApiError(400, 'EMPTY', 'That file is empty. Choose a photo.'));
    return;
  }
  forgetPhoto();
  photo = { blob, name, url: URL.createObjectURL(blob) };
  focusResultsNext = true;
  navigate({ view: 'search', id: undefined });
}

function forgetPhoto(): void {
  if (photo) URL.revokeObjectURL(photo.url);
  photo = undefined;
  lastRegions = [];
  $.query.hidden = true;
  $.dropzone.classList.remove('compact');
}

function setupUpload(): void {
  $.pick.addEventListener('click', () => $.file.click());
  $.newPhoto.addEventListener('click', () => $.file.click());
  $.file.addEventListener('change', () => {
    const file = $.file.files?.[0];
    if (file) usePhoto(file, file.name);
    $.file.value = '';
  });
  const zone = $.views.search;
  zone.addEventListener('dragover', (event) => {
    if (!event.dataTransfer?.types.includes('Files')) return;
    event.preventDefault();
    $.dropzone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', (event) => {
    if (!zone.contains(event.relatedTarget as Node)) $.dropzone.classList.remove('dragging');
  });
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    $.dropzone.classList.remove('dragging');
    const file = event.dataTransfer?.files[0];
    if (file) usePhoto(file, file.name);
  });
  document.addEventListener('paste', (event) => {
    const file = [...(event.clipboardData?.files ?? [])][0];
    if (!file) return;
    event.preventDefault();
    usePhoto(file, file.name || 'pasted-image');
  });
}

async function loadExamples(): Promise<void> {
  const types = (await api.facets({})).fields.articleType ?? [];
  const picks = await Promise.all(types.slice(0, EXAMPLES).map((t) => api.items({ articleType: t.value }, 0, 1).then((p) => p.items[0])));
  const items = picks.filter((i): i is Item => Boolean(i));
  if (items.length < EXAMPLES) {
    const more = await api.items({}, 0, EXAMPLES);
    for (const i of more.items) if (items.length < EXAMPLES && !items.some((x) => x.id === i.id)) items.push(i);
  }
  $.exampleList.replaceChildren(...items.map((item) => {
    const name = item.metadata.productDisplayName || item.id;
    return h('li', {}, h('button', {
      type: 'button',
      class: 'example',
      'aria-label': `Search with the photo of ${name}`,
      onclick: async () => {
        try {
          const res = await fetch(item.imageUrl);
          if (!res.ok) throw new ApiError(res.status, 'IMAGE', 'That example photo could not be loaded. Try another.');
          usePhoto(await res.blob(), `${item.id}.jpg`);
        } catch (err) {
          showError(err);
        }
      },
    }, h('img', { src: item.imageUrl, alt: '', loading: 'lazy', width: 60, height: 80 }), h('span', {}, item.metadata.articleType || name)));
  }));
}

// ---------------------------------------------------------------- browse

async function runBrowse(signal: AbortSignal): Promise<void> {
  setBusy(true);
  setStatus('Loading the catalog…');
  const page = await api.items(state.filters, (state.page - 1) * PAGE_SIZE, PAGE_SIZE, signal);
  const pages = Math.max(1, Math.ceil(page.total / PAGE_SIZE));
  if (state.page > pages) {
    navigate({ page: pages }, 'replace');
    return;
  }
  setBusy(false);
  renderGrid($.browseGrid, page.items, { href: (id) => similarHref(state, id), onOpen: openSimilar });
  const first = page.total ? page.offset + 1 : 0;
  const last = page.offset + page.items.length;
  $.browseSummary.textContent = `${numberFormat.format(page.total)} product${page.total === 1 ? '' : 's'}${Object.values(state.filters).some(Boolean) ? ' match the filters' : ''}. Choose one for more like it.`;
  $.browseEmpty.hidden = page.total > 0;
  if (!page.total) $.browseEmpty.replaceChildren(h('p', {}, h('strong', {}, 'No product matches these filters.')), h('button', { type: 'button', onclick: () => navigate({ filters: {}, page: 1 }) }, 'Clear the filters'));
  $.pageInfo.textContent = `Page ${numberFormat.format(state.page)} of ${numberFormat.format(pages)}`;
  $.prevPage.disabled = state.page <= 1;
  $.nextPage.disabled = state.page >= pages;
  setStatus(page.total ? `Showing ${numberFormat.format(first)}–${numberFormat.format(last)} of ${numberFormat.format(page.total)}.` : 'No products.');
}

// ---------------------------------------------------------------- controls

function renderControls(): void {
  // Without a k in the address the index's default applies (the one `tune --apply` stored).
  const defaultK = health?.defaults.k ?? DEFAULT_K;
  const k = state.k ?? defaultK;
  const ks = [...new Set([...K_CHOICES, defaultK, k])].sort((a, b) => a - b);
  if ($.k.options.length !== ks.length) $.k.replaceChildren(...ks.map((n) => h('option', { value: n }, `${n} results`)));
  $.k.value = String(k);
  $.threshold.value = String(state.threshold);
  $.thresholdValue.textContent = state.threshold > 0 ? state.threshold.toFixed(2) : 'off';
  $.mode.value = state.mode ?? DEFAULT_MODE;
  for (const select of $.filters.querySelectorAll('select')) select.value = state.filters[select.name] ?? '';
  $.clearFilters.hidden = !Object.values(state.filters).some(Boolean);
}

function setupControls(): void {
  $.controls.addEventListener('submit', (event) => event.preventDefault());
  $.k.addEventListener('change', () => navigate({ k: Number($.k.value) === (health?.defaults.k ?? DEFAULT_K) ? undefined : Number($.k.value) }, 'replace'));
  $.mode.addEventListener('change', () => navigate({ mode: $.mode.value === DEFAULT_MODE ? undefined : $.mode.value }, 'replace'));
  const applyThreshold = debounce(() => navigate({ threshold: Number($.threshold.value) }, 'replace'), 250);
  $.threshold.addEventListener('input', () => {
    const t = Number($.threshold.value);
    $.thresholdValue.textContent = t > 0 ? t.toFixed(2) : 'off';
    applyThreshold();
  });
  $.filters.addEventListener('change', (event) => {
    const select = event.target as HTMLSelectElement;
    const filters = { ...state.filters };
    if (select.value) filters[select.name] = select.value;
    else delete filters[select.name];
    navigate({ filters, page: 1 });
  });
  $.clearFilters.addEventListener('click', () => navigate({ filters: {}, page: 1 }));
  $.prevPage.addEventListener('click', () => { navigate({ page: state.page - 1 }); $.main.focus(); });
  $.nextPage.addEventListener('click', () => { navigate({ page: state.page + 1 }); $.main.focus(); });
  for (const a of document.querySelectorAll<HTMLAnchorElement>('.tabs a')) {
    a.addEventListener('click', (event) => {
      if (event.metaKey || event.ctrlKey || event.shiftKey) return;
      event.preventDefault();
      navigate({ view: a.dataset.view as View, page: 1 });
    });
  }
  gridKeyboard($.results);
  gridKeyboard($.browseGrid);
}

/** Filter choices with counts; a field's counts apply the other filters (see /api/facets). */
const refreshFacets = debounce(async () => {
  facetsRequest?.abort();
  const controller = new AbortController();
  facetsRequest = controller;
  let facets: Facets;
  try {
    facets = await api.facets(state.filters, controller.signal);
  } catch (err) {
    if ((err as Error).name !== 'AbortError') $.filters.replaceChildren(h('p', { class: 'help' }, 'The filters could not be loaded.'));
    return;
  }
  if (!$.filters.querySelector('select')) $.filters.replaceChildren();
  for (const field of facetFields) {
    const id = `filter-${field}`;
    let select = document.getElementById(id) as HTMLSelectElement | null;
    if (!select) {
      select = h('select', { id, name: field });
      $.filters.append(h('div', { class: 'control' }, h('label', { for: id }, fieldLabel(field)), select));
    }
    const values = facets.fields[field] ?? [];
    const current = state.filters[field];
    const options = [h('option', { value: '' }, `Any ${fieldLabel(field).toLowerCase()}`)];
    for (const v of values) options.push(h('option', { value: v.value }, `${v.value} (${numberFormat.format(v.count)})`));
    if (current && !values.some((v) => v.value === current)) options.push(h('option', { value: current }, `${current} (0)`));
    select.replaceChildren(...options);
    select.value = current ?? '';
  }
}, 80);

// ---------------------------------------------------------------- messages

function setStatus(text: string): void {
  $.status.textContent = text;
}

function setBusy(busy: boolean): void {
  $.main.setAttribute('aria-busy', String(busy));
  $.main.classList.toggle('busy', busy);
}

function showError(err: unknown, retry?: () => void): void {
  const e = err instanceof ApiError ? err : new ApiError(0, 'UNKNOWN', 'Something went wrong in the page. Reload it and try again.');
  if (!(err instanceof ApiError)) console.error(err);
  // The server's busy message says so itself; other messages read better after "Sorry:".
  const parts: Array<HTMLElement | string> = [h('p', {}, e.status === 503 ? null : h('strong', {}, 'Sorry: '), e.message)];
  if (e.status === 503 && retry) parts.push(h('button', { type: 'button', onclick: () => retry() }, e.retryAfter ? `Try again (wait about ${e.retryAfter} s)` : 'Try again'));
  else if (e.status === 0 && retry) parts.push(h('button', { type: 'button', onclick: () => retry() }, 'Try again'));
  $.error.replaceChildren(...parts);
  $.error.dataset.code = e.code;
  $.error.hidden = false;
}

function clearError(): void {
  $.error.hidden = true;
  $.error.replaceChildren();
}

function duration(ms: number): string {
  return ms < 1000 ? `${Math.max(1, Math.round(ms))} ms` : `${(ms / 1000).toFixed(2)} s`;
}

function describe(item: Item): string {
  return [item.metadata.articleType, item.metadata.baseColour, item.metadata.gender].filter(Boolean).join(' · ');
}

// ---------------------------------------------------------------- start

async function start(): Promise<void> {
  setupControls();
  setupUpload();
  setupCrop();
  setupWords();
  if (window.matchMedia('(max-width: 760px)').matches) $.details.open = false;
  try {
    health = await api.health();
  } catch (err) {
    showError(err, () => location.reload());
    return;
  }
  facetFields = health.index.facetFields;
  $.catalogInfo.textContent = `${numberFormat.format(health.index.items)} products`;
  $.uploadHelp.textContent = `${health.limits.formats.map((f) => f.toUpperCase()).join(', ')}; up to ${megabytes(health.limits.maxUploadBytes)}.`;
  state = parseState(location.search, facetFields, health.limits.maxK, health.modes);
  renderControls();
  window.addEventListener('popstate', () => {
    state = parseState(location.search, facetFields, health!.limits.maxK, health!.modes);
    renderControls();
    void run();
  });
  void loadExamples().then(() => { $.examples.hidden = Boolean(state.id || photo) || state.view !== 'search'; }, () => { $.examples.hidden = true; });
  await run();
}

void start();
