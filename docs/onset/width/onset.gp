# normscope plot onset: onset map: growth of the batch-vs-running distance at the site where it grows most, per cell
# Data: onset.dat (one block per run, see its comments). Edit this file and re-run it
# with `gnuplot onset.gp`: it makes onset.png and onset.svg next to itself.

# Work in this script's directory, wherever gnuplot was started.
lastslash(s, i) = i < 1 ? 0 : (s[i:i] eq "/" ? i : lastslash(s, i - 1))
if (exists("ARG0") && lastslash(ARG0, strlen(ARG0)) > 1) {
    cd ARG0[1:lastslash(ARG0, strlen(ARG0)) - 1]
}
dat = "onset.dat"
palette_rgb = "0072B2 D55E00 009E73 CC79A7 E69F00 000000 56B4E9 999999"
run_color(i) = "#" . word(palette_rgb, i % 8 + 1)
run_dt(i) = 1
run_pt(i) = 7
set linetype 101 lc rgb "#0072B2" dt 1 pt 7
set linetype 102 lc rgb "#D55E00" dt 1 pt 7
set linetype 103 lc rgb "#009E73" dt 1 pt 7
set linetype 104 lc rgb "#CC79A7" dt 1 pt 7
set linetype 105 lc rgb "#E69F00" dt 1 pt 7
set linetype 106 lc rgb "#000000" dt 1 pt 7
set linetype 107 lc rgb "#56B4E9" dt 1 pt 7
set linetype 108 lc rgb "#999999" dt 1 pt 7
set linetype 109 lc rgb "#0072B2" dt 1 pt 7
set linetype 110 lc rgb "#D55E00" dt 1 pt 7
set linetype 111 lc rgb "#009E73" dt 1 pt 7
set linetype 112 lc rgb "#CC79A7" dt 1 pt 7
set linetype 113 lc rgb "#E69F00" dt 1 pt 7
set linetype 114 lc rgb "#000000" dt 1 pt 7
set linetype 115 lc rgb "#56B4E9" dt 1 pt 7
set linetype 116 lc rgb "#999999" dt 1 pt 7
set linetype 117 lc rgb "#0072B2" dt 1 pt 7
set linetype 118 lc rgb "#D55E00" dt 1 pt 7
set linetype 119 lc rgb "#009E73" dt 1 pt 7
set linetype 120 lc rgb "#CC79A7" dt 1 pt 7
set linetype 121 lc rgb "#E69F00" dt 1 pt 7
set linetype 122 lc rgb "#000000" dt 1 pt 7
set linetype 123 lc rgb "#56B4E9" dt 1 pt 7
set linetype 124 lc rgb "#999999" dt 1 pt 7
set linetype 125 lc rgb "#0072B2" dt 1 pt 7
set linetype 126 lc rgb "#D55E00" dt 1 pt 7
set linetype 127 lc rgb "#009E73" dt 1 pt 7
set linetype 128 lc rgb "#CC79A7" dt 1 pt 7
set linetype 129 lc rgb "#E69F00" dt 1 pt 7
set linetype 130 lc rgb "#000000" dt 1 pt 7
set linetype 131 lc rgb "#56B4E9" dt 1 pt 7
set linetype 132 lc rgb "#999999" dt 1 pt 7
# faint = raw data: the run's colour, mostly transparent
run_faint(i) = "#B0" . run_color(i)[2:]
# Log axes must not receive 0 or negative values: they become undefined points.
pos(y) = y > 0 ? y : NaN
set encoding utf8

do for [fmt in "png svg"] {
    if (fmt eq "png") {
        set terminal pngcairo size 1380,410 noenhanced font "Sans,10"
        set output "onset.png"
    }
    if (fmt eq "svg") {
        set terminal svg size 1380,410 dynamic noenhanced font "Sans,10" background "white"
        set output "onset.svg"
    }
    reset
    set grid lc rgb "#dddddd"
    set key top right opaque box lc rgb "#cccccc"
    set style fill solid 0.35 border

    set multiplot layout 1,3 title "growth = median distance (dist_var; PN family: dist_psi2) in the last fifth / in the second fifth, at the site where it grows most"
    set logscale cb
    set cbrange [0.440772:2.26875]
    set cblabel "growth"
    set palette defined (0 "#2166ac", 0.5 "#f7f7f7", 1 "#b2182b")
    unset key
    unset grid
    set title "batch (post)"
    set xlabel "d-model"
    set ylabel "lr"
    set xrange [-0.5:1.5]
    set yrange [-0.5:1.5]
    set xtics ("64" 0, "128" 1)
    set ytics ("1e-3" 0, "3e-3" 1)
    plot dat index 0 using 1:2:(0.5):(0.5):(pos($3)) with boxxyerror fs solid 1.0 noborder lc palette notitle, \
         dat index 0 using 1:2:5 with labels notitle
    set title "power-v (post)"
    set xlabel "d-model"
    set ylabel "lr"
    set xrange [-0.5:1.5]
    set yrange [-0.5:1.5]
    set xtics ("64" 0, "128" 1)
    set ytics ("1e-3" 0, "3e-3" 1)
    plot dat index 1 using 1:2:(0.5):(0.5):(pos($3)) with boxxyerror fs solid 1.0 noborder lc palette notitle, \
         dat index 1 using 1:2:5 with labels notitle
    set title "layer (post)"
    set xlabel "d-model"
    set ylabel "lr"
    set xrange [-0.5:1.5]
    set yrange [-0.5:1.5]
    set xtics ("64" 0, "128" 1)
    set ytics ("1e-3" 0, "3e-3" 1)
    plot dat index 2 using 1:2:(0.5):(0.5):(pos($3)) with boxxyerror fs solid 1.0 noborder lc palette notitle, \
         dat index 2 using 1:2:5 with labels notitle
    unset multiplot
    set output
}
