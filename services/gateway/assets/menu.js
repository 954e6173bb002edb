// The menu page: add to cart, filters (search and allergens to exclude), and the cart bar.

import { addToCart, cartLines, cartTotal, cartCount, onCartChange } from './cart.js';
import { T, t, count, money, toast } from './common.js';

const dishes = [...document.querySelectorAll('.dish')];
const search = document.getElementById('dish-search');
const excluded = [...document.querySelectorAll('input[name="exclude"]')];
const noResults = document.querySelector('[data-no-results]');
const allergenCount = document.querySelector('[data-allergen-count]');

function applyFilters() {
  const words = (search?.value || '').trim().toLowerCase().split(/\s+/).filter(Boolean);
  const without = excluded.filter((box) => box.checked).map((box) => box.value);
  let shown = 0;
  for (const dish of dishes) {
    const allergens = (dish.dataset.allergens || '').split(' ');
    const text = dish.dataset.search || '';
    const visible = words.every((w) => text.includes(w)) && !without.some((a) => allergens.includes(a));
    dish.hidden = !visible;
    if (visible) shown += 1;
  }
  for (const section of document.querySelectorAll('.category')) {
    section.hidden = ![...section.querySelectorAll('.dish')].some((d) => !d.hidden);
  }
  if (noResults) noResults.hidden = shown > 0 || dishes.length === 0;
  if (allergenCount) {
    allergenCount.textContent = without.length;
    allergenCount.hidden = without.length === 0;
  }
}

search?.addEventListener('input', applyFilters);
for (const box of excluded) box.addEventListener('change', applyFilters);
document.querySelector('[data-clear-filters]')?.addEventListener('click', () => {
  if (search) search.value = '';
  for (const box of excluded) box.checked = false;
  applyFilters();
  search?.focus();
});

document.addEventListener('click', (event) => {
  const button = event.target.closest('[data-add-to-cart]');
  if (!button) return;
  const item = JSON.parse(button.dataset.addToCart);
  addToCart(item);
  toast(t('added_to_cart', { name: item.name }), 'success');
});

function showCart() {
  const lines = cartLines();
  const bar = document.querySelector('[data-cart-bar]');
  const n = cartCount();
  if (bar) {
    bar.hidden = n === 0;
    bar.querySelector('[data-cart-summary]').textContent =
      `${count(n, 'items_one', 'items_many')} · ${money(cartTotal())}`;
  }
  for (const dish of dishes) {
    const badge = dish.querySelector('[data-in-cart]');
    if (!badge) continue;
    const quantity = lines.filter((l) => l.dishId === dish.dataset.dishId).reduce((s, l) => s + l.quantity, 0);
    badge.hidden = quantity === 0;
    badge.textContent = t('in_cart', { n: quantity });
  }
}

onCartChange(showCart);
showCart();
applyFilters();
