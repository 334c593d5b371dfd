# plot.gp: each proxy per workload, normalised to nginx = 1.0. Top: measured
# requests/s; bottom: requests per CPU-second of the proxy (1 / CPU per
# request), which holds up when other processes share the machine.
# report.py calls: gnuplot -e "datafile='...'; outfile='...'" plot.gp
set terminal pngcairo size 1100,900 noenhanced font ",10"
set output outfile
set multiplot layout 2,1
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key top right
set grid ytics
set yrange [0:*]
set ylabel "relative to nginx"
set xtics rotate by -20
set datafile separator "\t"
set datafile missing "NaN"
set title "requests/s relative to nginx (higher is better)"
plot datafile using 2:xtic(1) title columnheader(2) lc rgb "#4c72b0", \
     '' using 3 title columnheader(3) lc rgb "#dd8452", \
     '' using 4 title columnheader(4) lc rgb "#55a868", \
     1 with lines dt 2 lc rgb "black" notitle
set title "requests per CPU-second of the proxy, relative to nginx (higher is better)"
plot datafile using 5:xtic(1) title columnheader(5) lc rgb "#4c72b0", \
     '' using 6 title columnheader(6) lc rgb "#dd8452", \
     '' using 7 title columnheader(7) lc rgb "#55a868", \
     1 with lines dt 2 lc rgb "black" notitle
unset multiplot
