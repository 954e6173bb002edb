// The menu page: add to cart (with the dish's options: cooking, supplements…), filters (search
// and allergens to exclude), and the cart bar.

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

// Options: the picks of a dish card, as the cart keeps them, and the price they make.
function pickedOptions(card) {
  const picked = [];
  for (const group of card.querySelectorAll('.option-group')) {
    for (const input of group.querySelectorAll('input:checked')) {
      picked.push({
        groupId: group.dataset.groupId, choiceId: input.value,
        group: group.dataset.groupName, choice: input.dataset.choiceName,
        priceDelta: { amount: Number(input.dataset.delta) || 0, currency: card.querySelector('[data-base-price]').dataset.currency },
      });
    }
  }
  return picked;
}

function optionsPrice(card) {
  const price = card.querySelector('[data-base-price]');
  const amount = Number(price.dataset.basePrice) + pickedOptions(card).reduce((s, o) => s + o.priceDelta.amount, 0);
  return { amount, currency: price.dataset.currency };
}

// Check boxes stay within the group's maximum (a group of one behaves like radio buttons).
document.addEventListener('change', (event) => {
  const group = event.target.closest('.option-group');
  if (!group) return;
  const max = Number(group.dataset.max) || 1;
  const boxes = [...group.querySelectorAll('input[type="checkbox"]')];
  if (max === 1 && event.target.checked) {
    for (const box of boxes) if (box !== event.target) box.checked = false;
  }
  const full = boxes.filter((b) => b.checked).length >= max;
  for (const box of boxes) box.disabled = max > 1 && full && !box.checked;
  const card = group.closest('.dish');
  card.querySelector('[data-base-price]').textContent = money(optionsPrice(card));
});

document.addEventListener('click', (event) => {
  const button = event.target.closest('[data-add-to-cart]');
  if (!button) return;
  const item = JSON.parse(button.dataset.addToCart);
  const card = button.closest('.dish');
  if (card?.querySelector('.option-group')) {
    for (const group of card.querySelectorAll('.option-group')) {
      if (group.querySelectorAll('input:checked').length < Number(group.dataset.min)) {
        toast(t('option_missing', { name: item.name, group: group.dataset.groupName }), 'error');
        group.querySelector('input')?.focus();
        return;
      }
    }
    item.options = pickedOptions(card);
    item.price = optionsPrice(card);
  }
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
