# normscope plot figure2: first norm site of a vision and a Transformer run (paper Fig. 2)
# Data: figure2.dat (one block per run, see its comments). Edit this file and re-run it
# with `gnuplot figure2.gp`: it makes figure2.png next to itself.

# Work in this script's directory, wherever gnuplot was started.
lastslash(s, i) = i < 1 ? 0 : (s[i:i] eq "/" ? i : lastslash(s, i - 1))
if (exists("ARG0") && lastslash(ARG0, strlen(ARG0)) > 1) {
    cd ARG0[1:lastslash(ARG0, strlen(ARG0)) - 1]
}
dat = "figure2.dat"
# One colour per scheme, the same in every normscope figure; a further run of a scheme
# (seed, position) has another dash type and marker. Run i: 0=batch (), 1=batch (post)
run_rgb = "#D55E00 #D55E00"
run_dts = "1 2"
run_pts = "5 9"
run_color(i) = word(run_rgb, i % 2 + 1)
run_dt(i) = int(word(run_dts, i % 2 + 1))
run_pt(i) = int(word(run_pts, i % 2 + 1))
# linetype 101 + i: run i's colour, dash and marker (kept by `reset`)
set linetype 101 lc rgb "#D55E00" dt 1 pt 5
set linetype 102 lc rgb "#D55E00" dt 2 pt 9
# faint = raw data: the run's colour, mostly transparent
run_faint(i) = "#B0" . run_color(i)[2:]
# Log axes must not receive 0 or negative values: they become undefined points.
pos(y) = y > 0 ? y : NaN
set encoding utf8

do for [fmt in "png"] {
    if (fmt eq "png") {
        set terminal pngcairo size 1200,800 noenhanced font "Sans,10"
        set output "figure2.png"
    }
    reset
    set grid lc rgb "#dddddd"
    set key top right opaque box lc rgb "#cccccc"
    set style fill solid 0.35 border

    set multiplot layout 2,2 title "Distance of batch statistics from running statistics at the first norm site (PowerNorm paper Fig. 2)\nfaint: every step; bold: trailing mean"
    set key top right
    set xrange [0:100]
    set title "batch mean vs running mean"
    set xlabel "percent of training"
    set ylabel "(1/d)||μ_B − μ_run||₂"
    set logscale y
    set format y "%g"
    set autoscale y
    set ytics autofreq
    set yrange [0.0001454681923:0.1137271239]  # the data's range and a margin
    set ytics (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
    plot dat index 0 using 1:(pos($2)) with lines lw 1 lc rgb run_faint(0) notitle, \
         dat index 0 using 1:(pos($6)) with linespoints lw 2.5 lt 101 pi 21 title "vision batch (): bn", \
         dat index 1 using 1:(pos($2)) with lines lw 1 lc rgb run_faint(1) notitle, \
         dat index 1 using 1:(pos($6)) with linespoints lw 2.5 lt 102 pi 41 title "Transformer batch (post): layers/0/norm1"
    set title "batch mean vs running mean, relative"
    set xlabel "percent of training"
    set ylabel "||μ_B − μ_run|| / ||μ_run||"
    set logscale y
    set format y "%g"
    set autoscale y
    set ytics autofreq
    set yrange [0.02466199929:13.02207892]  # the data's range and a margin
    set ytics (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)
    plot dat index 0 using 1:(pos($3)) with lines lw 1 lc rgb run_faint(0) notitle, \
         dat index 0 using 1:(pos($7)) with linespoints lw 2.5 lt 101 pi 21 title "vision batch (): bn", \
         dat index 1 using 1:(pos($3)) with lines lw 1 lc rgb run_faint(1) notitle, \
         dat index 1 using 1:(pos($7)) with linespoints lw 2.5 lt 102 pi 41 title "Transformer batch (post): layers/0/norm1"
    set title "batch variance vs running variance"
    set xlabel "percent of training"
    set ylabel "(1/d)||σ²_B − σ²_run||₂"
    set logscale y
    set format y "%g"
    set autoscale y
    set ytics autofreq
    set yrange [0.001123367076:0.2623683358]  # the data's range and a margin
    set ytics (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
    plot dat index 0 using 1:(pos($4)) with lines lw 1 lc rgb run_faint(0) notitle, \
         dat index 0 using 1:(pos($8)) with linespoints lw 2.5 lt 101 pi 21 title "vision batch (): bn", \
         dat index 1 using 1:(pos($4)) with lines lw 1 lc rgb run_faint(1) notitle, \
         dat index 1 using 1:(pos($8)) with linespoints lw 2.5 lt 102 pi 41 title "Transformer batch (post): layers/0/norm1"
    set title "batch variance vs running variance, relative"
    set xlabel "percent of training"
    set ylabel "||σ²_B − σ²_run|| / ||σ²_run||"
    set logscale y
    set format y "%g"
    set autoscale y
    set ytics autofreq
    set yrange [0.003406974451:1.072332264]  # the data's range and a margin
    set ytics (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1)
    plot dat index 0 using 1:(pos($5)) with lines lw 1 lc rgb run_faint(0) notitle, \
         dat index 0 using 1:(pos($9)) with linespoints lw 2.5 lt 101 pi 21 title "vision batch (): bn", \
         dat index 1 using 1:(pos($5)) with lines lw 1 lc rgb run_faint(1) notitle, \
         dat index 1 using 1:(pos($9)) with linespoints lw 2.5 lt 102 pi 41 title "Transformer batch (post): layers/0/norm1"
    unset multiplot
    set output
}
