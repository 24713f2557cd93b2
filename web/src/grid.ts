// Product cards in a grid. Each card is a link to "more like this", so it works with the
// keyboard, opens in a new tab and can be copied; arrow keys move between cards.
import type { Hit, Item } from './api';
import { h } from './dom';

export interface CardOptions {
  href: (id: string) => string;
  onOpen: (id: string) => void;
  /** "Like" / "Not this" under each card: refines the results without a new search. */
  onFeedback?: (id: string, liked: boolean) => void;
}

export function card(item: Item | Hit, options: CardOptions): HTMLLIElement {
  const m = item.metadata;
  const name = m.productDisplayName || m.folder || item.id;
  const details = [m.articleType, m.baseColour].filter(Boolean).join(' · ');
  const score = 'score' in item ? item.score : undefined;
  // A product with several photos: the one that matched is shown, the others a click away.
  const photo = 'photo' in item ? item.photo : undefined;
  const image = h('img', { src: photo?.imageUrl ?? item.imageUrl, alt: '', loading: 'lazy', decoding: 'async', width: 60, height: 80 });
  const link = h('a', {
    class: 'card',
    href: options.href(item.id),
    'data-id': item.id,
    onclick: ((event: MouseEvent) => {
      // Plain clicks stay in the page; modified clicks (new tab, ...) keep the browser's way.
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      options.onOpen(item.id);
    }) as EventListener,
  },
  h('span', { class: 'card-image' }, image),
  h('span', { class: 'card-body' },
    h('span', { class: 'visually-hidden' }, 'More like this: '),
    h('span', { class: 'card-name' }, name),
    details ? h('span', { class: 'card-details' }, details) : null,
    m.gender ? h('span', { class: 'card-details' }, m.gender) : null,
    score !== undefined
      ? h('span', { class: 'card-score' },
        h('span', { class: 'score-bar', 'aria-hidden': 'true' }, scoreFill(score)),
        h('span', {}, `similarity ${score.toFixed(3)}`))
      : null));
  const actions = options.onFeedback
    ? h('span', { class: 'card-actions' },
      h('button', { type: 'button', class: 'like', 'aria-label': `Like ${name}: more like it`, onclick: () => options.onFeedback!(item.id, true) }, '♥ Like'),
      h('button', { type: 'button', class: 'unlike', 'aria-label': `Not this: fewer like ${name}`, onclick: () => options.onFeedback!(item.id, false) }, '✕ Not this'))
    : null;
  return h('li', {}, link, photo ? photoFlipper(photo, image, name) : null, actions);
}

type MatchedPhoto = NonNullable<Hit['photo']>;

/** "‹ photo 2 of 3 ›" under a card: flips its image through the product's photos. */
function photoFlipper(photo: MatchedPhoto, image: HTMLImageElement, name: string): HTMLElement {
  let at = photo.index;
  const label = h('span', { class: 'photo-label', 'aria-live': 'polite' });
  const show = (index: number) => {
    at = (index + photo.of) % photo.of;
    image.src = photo.photos[at];
    label.textContent = `photo ${at + 1} of ${photo.of}${at === photo.index ? ` · matched${photo.view ? ` (${photo.view})` : ''}` : ''}`;
  };
  show(at);
  return h('span', { class: 'card-photos' },
    h('button', { type: 'button', class: 'photo-prev', 'aria-label': `Previous photo of ${name}`, onclick: () => show(at - 1) }, '‹'),
    label,
    h('button', { type: 'button', class: 'photo-next', 'aria-label': `Next photo of ${name}`, onclick: () => show(at + 1) }, '›'));
}

function scoreFill(score: number): HTMLElement {
  const fill = h('span', { class: 'score-fill' });
  fill.style.width = `${Math.round(Math.max(0, Math.min(1, score)) * 100)}%`;
  return fill;
}

export function renderGrid(list: HTMLElement, items: Array<Item | Hit>, options: CardOptions): void {
  list.replaceChildren(...items.map((item) => card(item, options)));
}

/** Arrow keys, Home and End move focus between the cards of a grid. */
export function gridKeyboard(list: HTMLElement): void {
  list.addEventListener('keydown', (event) => {
    const cards = [...list.querySelectorAll<HTMLAnchorElement>('a.card')];
    const at = cards.indexOf(document.activeElement as HTMLAnchorElement);
    if (at < 0) return;
    const top = cards[0].offsetTop;
    const columns = Math.max(1, cards.findIndex((c) => c.offsetTop !== top) === -1 ? cards.length : cards.findIndex((c) => c.offsetTop !== top));
    const moves: Record<string, number> = {
      ArrowRight: at + 1,
      ArrowLeft: at - 1,
      ArrowDown: at + columns,
      ArrowUp: at - columns,
      Home: 0,
      End: cards.length - 1,
    };
    const to = moves[event.key];
    if (to === undefined) return;
    event.preventDefault();
    cards[Math.max(0, Math.min(cards.length - 1, to))].focus();
  });
}
