/*
 * The incident's location on a Leaflet map. The tile URL comes from the MAP_TILE_URL setting
 * (data-tile-url); an empty one means no tile layer, just the marker. The location is always
 * written out in text beside the map, so nothing depends on a tile server being reachable.
 */
(function () {
  "use strict";

  var element = document.getElementById("incident-map");
  if (!element || !window.L) return;
  var lat = parseFloat(element.dataset.lat);
  var lng = parseFloat(element.dataset.lng);
  if (isNaN(lat) || isNaN(lng)) return;

  var map = window.L.map(element, { scrollWheelZoom: false, keyboard: true }).setView([lat, lng], 15);
  var tiles = element.dataset.tileUrl;
  if (tiles) {
    window.L.tileLayer(tiles, { maxZoom: 19, attribution: element.dataset.attribution || "" }).addTo(map);
  } else {
    element.classList.add("no-tiles");
  }
  window.L.marker([lat, lng], { title: element.dataset.label || "Incident", alt: "Incident location" })
    .addTo(map);
})();
