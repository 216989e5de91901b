(function () {
  "use strict";
  var root = document.getElementById("app");
  var view = root.dataset.view, prefix = root.dataset.prefix;
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function render(data) {
    root.textContent = "";
    document.title = data.title + " · Frescura";
    root.appendChild(el("h1", {"class": view === "product" ? "pdp-title" : "page-title"}, data.title));
    if (view === "home" || (view === "category" && data.children)) {
      var nav = el("ul", {"class": "category-links"});
      data.children.forEach(function (c) {
        var li = el("li"); li.appendChild(el("a", {"href": c.url}, c.name)); nav.appendChild(li);
      });
      root.appendChild(nav);
    }
    if (view === "category" && data.products) {
      var grid = el("div", {"class": "grid"});
      data.products.forEach(function (p) {
        var tile = el("a", {"class": "tile", "href": p.url, "data-id": p.id});
        tile.appendChild(el("span", {"class": "tile-name"}, p.name));
        tile.appendChild(el("span", {"class": "tile-price"}, p.price_text));
        grid.appendChild(tile);
      });
      root.appendChild(grid);
      if (data.next) {
        root.appendChild(el("a", {"rel": "next", "class": "next", "href": data.next}, "Más productos"));
        document.head.appendChild(el("link", {"rel": "next", "href": data.next}));
      }
    }
    if (view === "product") {
      var p = data.product;
      root.appendChild(el("span", {"class": "pdp-brand"}, p.brand));
      if (p.was_text) root.appendChild(el("s", {"class": "pdp-was"}, p.was_text));
      root.appendChild(el("span", {"class": "pdp-price", "data-price": p.price}, p.price_text));
      root.appendChild(el("span", {"class": "pdp-unit"}, p.unit_price_text));
      root.appendChild(el("span", {"class": "pdp-stock"}, p.in_stock ? "Disponible" : "Agotado"));
      root.appendChild(el("span", {"class": "pdp-size"}, p.size));
    }
    root.setAttribute("data-ready", "1");
  }
  fetch(root.dataset.source, {headers: {"Accept": "application/json"}})
    .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
    .then(render)
    .catch(function (e) { root.textContent = "Error al cargar: " + e.message; });
})();
