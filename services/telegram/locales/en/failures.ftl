# Why a generation failed, as far as a user needs to know (services.kie.failures picks the
# reason from Kie's code and text; users never see Kie's own words).
failure-content_policy = The model's content rules refused this request. Change the prompt or the image.
failure-bad_input_image = The model could not read your file. Send another image (JPG or PNG).
failure-timeout = The generation took too long. Please try again.
failure-service_unavailable = The generation service is unavailable right now. Please try again later.
failure-generic = The generation failed. Please try again or change the request.

# A failed or expired job's notice: the reason above, and that the hold came back.
delivery-failed = ❌ { $model }: it did not work. { $reason }
    You were not charged: the hold is back on your balance.
