# Renders one man page with scdoc: IN (the .scd source) to OUT. With
# BROKERD, @CONFIG_REFERENCE@ becomes ioreq-brokerd's own configuration
# reference, so the page and README.md come from the same tables.
file(READ ${IN} text)
if(BROKERD)
  execute_process(COMMAND ${BROKERD} --print-config-reference=scdoc OUTPUT_VARIABLE ref RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "${BROKERD} --print-config-reference=scdoc failed")
  endif()
  string(REPLACE "@CONFIG_REFERENCE@" "${ref}" text "${text}")
endif()
file(WRITE ${OUT}.scd "${text}")
execute_process(COMMAND ${SCDOC} INPUT_FILE ${OUT}.scd OUTPUT_FILE ${OUT} RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "scdoc failed on ${IN}")
endif()
