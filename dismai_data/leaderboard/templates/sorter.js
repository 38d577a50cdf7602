document.querySelectorAll("table.lb").forEach(function(t){
t.querySelectorAll("th[data-k]").forEach(function(th,ci){th.addEventListener("click",function(){
var idx=Array.prototype.indexOf.call(th.parentNode.children,th);
var asc=th.getAttribute("aria-sort")!=="ascending";
t.querySelectorAll("th[data-k]").forEach(function(o){o.removeAttribute("aria-sort");});
th.setAttribute("aria-sort",asc?"ascending":"descending");
var tb=t.tBodies[0];var rows=Array.prototype.slice.call(tb.rows);
rows.sort(function(a,b){var x=a.cells[idx].getAttribute("data-v"),y=b.cells[idx].getAttribute("data-v");
var nx=parseFloat(x),ny=parseFloat(y);var ex=(x===null||x===""||isNaN(nx)),ey=(y===null||y===""||isNaN(ny));
if(ex||ey){if(ex&&ey){return (a.cells[idx].textContent).localeCompare(b.cells[idx].textContent)*(asc?1:-1);}return ex?1:-1;}
return asc?nx-ny:ny-nx;});
rows.forEach(function(r){tb.appendChild(r);});});});});
