// The order history: "order again" puts an earlier order's dishes back in the cart.

import { addToCart } from './cart.js';
import { T, toast } from './common.js';

document.addEventListener('click', (event) => {
  const button = event.target.closest('[data-reorder]');
  if (!button) return;
  for (const line of JSON.parse(button.dataset.reorder)) {
    addToCart({ dishId: line.dishId, name: line.name, price: line.price, note: line.note || '', options: line.options || [] }, line.quantity);
  }
  toast(T.reordered, 'success');
  setTimeout(() => { location.href = '/cart'; }, 400);
});
