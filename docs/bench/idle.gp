
set terminal pngcairo size 800,450 font "sans,10"
set output "/work/main/docs/bench/idle.png"
set title "Memory with N idle connections parked after EHLO (PSS of all the MTA's processes)"
set logscale y
set xlabel "connections"
set ylabel "MB (log scale)"
set grid
set key top left
set datafile missing "NaN"
plot "/work/main/docs/bench/idle.dat" using 1:2 with linespoints lw 2 pt 7 lc rgb "#7f7f7f" title "Postfix", \
     "" using 1:3 with linespoints lw 2 pt 7 lc rgb "#1f77b4" title "sealpost"
